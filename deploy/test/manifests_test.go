// Package deploytest checks the Helm chart deploy/helm/raftkv and the
// manifests rendered from it into deploy/k8s/. No Kubernetes cluster runs
// here, so it proves what can be proved without one:
//
//   - `helm lint --strict` passes and `helm template` renders (helm is the
//     real helm, built from its Go module: `go tool helm`, pinned in go.mod);
//   - the committed deploy/k8s/ files are exactly a fresh render (run
//     `make k8s-manifests` after changing the chart);
//   - every rendered object decodes strictly (no unknown or duplicate
//     field) into its k8s.io/api type;
//   - the invariants of a Raft StatefulSet hold (see checkInvariants);
//   - the real raftkv binary, started with the pod's arguments, environment
//     and generated hostfile, accepts them and answers both probes.
//
// This is its own module so that helm and the Kubernetes API types stay out
// of raftkv's go.mod.
package deploytest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"raftkv/src/api"
	"raftkv/src/certs"
	"raftkv/src/config"
)

var update = flag.Bool("update", false, "write fresh renders to deploy/k8s/ instead of comparing")

const (
	chartDir  = "../helm/raftkv"
	k8sDir    = "../k8s"
	release   = "raftkv"
	namespace = "default"
)

// renders are the committed plain manifests: file and replica count.
var renders = []struct {
	file     string
	replicas int
}{
	{"raftkv.yaml", 3},
	{"raftkv-5.yaml", 5},
}

// helm runs the helm CLI pinned in go.mod and returns its stdout.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "helm"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func render(t *testing.T, set ...string) string {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	require.NoError(t, err)
	return out
}

func TestHelmLint(t *testing.T) {
	for _, r := range renders {
		out, err := helm(t, "lint", "--strict", chartDir, "--namespace", namespace, "--set", fmt.Sprintf("replicas=%d", r.replicas))
		require.NoError(t, err, out)
		assert.Contains(t, out, "0 chart(s) failed")
	}
}

// TestChartRefusesBadValues: the chart fails to render rather than
// produce a cluster that cannot work.
func TestChartRefusesBadValues(t *testing.T) {
	for _, set := range []string{"replicas=0", "podAntiAffinity=sometimes"} {
		_, err := helm(t, "template", release, chartDir, "--set", set)
		assert.Error(t, err, set)
	}
}

// TestManifests: the committed renders are fresh, decode strictly and keep
// the invariants.
func TestManifests(t *testing.T) {
	for _, r := range renders {
		t.Run(r.file, func(t *testing.T) {
			out := render(t, fmt.Sprintf("replicas=%d", r.replicas))
			path := filepath.Join(k8sDir, r.file)
			if *update {
				require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
			} else {
				committed, err := os.ReadFile(path)
				require.NoError(t, err)
				require.Equal(t, string(committed), out, "%s is stale: run `make k8s-manifests`", path)
			}
			checkInvariants(t, decodeAll(t, out), r.replicas)
		})
	}
}

// objects are the rendered objects by kind.
type objects struct {
	configMaps []*corev1.ConfigMap
	services   []*corev1.Service
	sets       []*appsv1.StatefulSet
	pdbs       []*policyv1.PodDisruptionBudget
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeAll splits helm's output into documents and decodes each strictly
// into its API type: a duplicate key, an unknown field (a typo such as
// publishNotReadyAdresses) or an unknown kind fails.
func decodeAll(t *testing.T, rendered string) objects {
	t.Helper()
	var objs objects
	for _, doc := range docSeparator.Split(rendered, -1) {
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		require.NoError(t, err, doc)
		if string(js) == "null" {
			continue // only comments
		}
		var tm metav1.TypeMeta
		require.NoError(t, json.Unmarshal(js, &tm))
		var into any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			objs.configMaps, into = append(objs.configMaps, o), o
		case "v1 Service":
			o := &corev1.Service{}
			objs.services, into = append(objs.services, o), o
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			objs.sets, into = append(objs.sets, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			objs.pdbs, into = append(objs.pdbs, o), o
		default:
			t.Fatalf("unexpected object %s %s:\n%s", tm.APIVersion, tm.Kind, doc)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(into), doc)
	}
	return objs
}

// checkInvariants: what a Raft StatefulSet needs to work and stay safe.
func checkInvariants(t *testing.T, objs objects, replicas int) {
	require.Len(t, objs.sets, 1)
	require.Len(t, objs.configMaps, 1)
	require.Len(t, objs.services, 2)
	require.Len(t, objs.pdbs, 1)
	sts, cm, pdb := objs.sets[0], objs.configMaps[0], objs.pdbs[0]
	pod := &sts.Spec.Template
	podLabels := labels.Set(pod.Labels)
	for _, name := range []string{sts.Name, cm.Name, pdb.Name, objs.services[0].Name, objs.services[1].Name} {
		assert.Empty(t, validation.IsDNS1035Label(name), "object name %q", name)
	}
	for _, m := range []metav1.ObjectMeta{sts.ObjectMeta, cm.ObjectMeta, pdb.ObjectMeta, objs.services[0].ObjectMeta, objs.services[1].ObjectMeta} {
		assert.Equal(t, namespace, m.Namespace, "%s: the hostfile's DNS names name the namespace", m.Name)
	}

	// The StatefulSet: the replica count, all pods at once (a node is ready
	// only with a quorum, so OrderedReady would never start pod 1), its
	// selector selects its pods.
	require.NotNil(t, sts.Spec.Replicas)
	assert.EqualValues(t, replicas, *sts.Spec.Replicas)
	assert.Equal(t, appsv1.ParallelPodManagement, sts.Spec.PodManagementPolicy)
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(podLabels), "the StatefulSet's selector selects its pods")

	// The headless Service names the pods, including not-ready ones (peers
	// must find each other before any is ready); the client Service reaches
	// the pods' http port.
	var headless, clients *corev1.Service
	for _, s := range objs.services {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = s
		} else {
			clients = s
		}
	}
	require.NotNil(t, headless, "a headless Service")
	require.NotNil(t, clients, "a client Service")
	assert.Equal(t, headless.Name, sts.Spec.ServiceName)
	assert.True(t, headless.Spec.PublishNotReadyAddresses)
	for _, s := range objs.services {
		assert.True(t, labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels), "Service %s selects the pods", s.Name)
	}
	require.Len(t, clients.Spec.Ports, 1)
	assert.Equal(t, "http", clients.Spec.Ports[0].TargetPort.String())

	require.Len(t, pod.Spec.Containers, 1)
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Contains(t, ports, "raft")
	require.Contains(t, ports, "http")

	// The hostfile: the real parser accepts it; its names are the pods'
	// names in ordinal order (ordinal = Raft ID); hosts are the pods' DNS
	// names under the headless Service; ports are the container's.
	require.Contains(t, cm.Data, "hostfile.json")
	hf, err := config.ParseHostfile("configmap "+cm.Name, []byte(cm.Data["hostfile.json"]))
	require.NoError(t, err)
	require.Len(t, hf.Raft, replicas)
	for i, p := range hf.Raft {
		podName := fmt.Sprintf("%s-%d", sts.Name, i)
		assert.Equal(t, podName, p.Name)
		assert.Equal(t, fmt.Sprintf("%s.%s.%s.svc.cluster.local", podName, headless.Name, namespace), p.Host)
		assert.Empty(t, validation.IsDNS1123Subdomain(p.Host), p.Host)
		assert.EqualValues(t, ports["raft"], p.RaftPort)
		assert.EqualValues(t, ports["http"], p.HTTPPort)
	}
	assert.Empty(t, hf.Clients)

	// The node's name is its pod's name; the hostfile is the ConfigMap; the
	// data folder is the pod's own volume claim.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	require.Contains(t, env, "RAFT_NAME")
	require.NotNil(t, env["RAFT_NAME"].ValueFrom)
	require.NotNil(t, env["RAFT_NAME"].ValueFrom.FieldRef)
	assert.Equal(t, "metadata.name", env["RAFT_NAME"].ValueFrom.FieldRef.FieldPath)
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	hostfileArg, dataArg := flagValue(c.Args, "--hostfile"), flagValue(c.Args, "--data")
	var hostfileVolume string
	for name, m := range mounts {
		if filepath.Join(m.MountPath, "hostfile.json") == hostfileArg {
			hostfileVolume = name
		}
	}
	require.NotEmpty(t, hostfileVolume, "--hostfile %s is in a mounted volume", hostfileArg)
	require.NotNil(t, volumes[hostfileVolume].ConfigMap)
	assert.Equal(t, cm.Name, volumes[hostfileVolume].ConfigMap.Name)
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1, "one PersistentVolumeClaim per pod")
	pvc := sts.Spec.VolumeClaimTemplates[0]
	assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, pvc.Spec.AccessModes)
	assert.False(t, pvc.Spec.Resources.Requests.Storage().IsZero())
	assert.NotContains(t, volumes, pvc.Name, "the data volume is the claim, not a pod volume")
	assert.Equal(t, "/persistence", mounts[pvc.Name].MountPath)
	assert.Equal(t, "/persistence", dataArg)
	assert.False(t, mounts[pvc.Name].ReadOnly)

	// Probes: liveness on /healthz, readiness on /readyz, on the http port
	// (TestPodCommandServesProbes shows both answer on the real binary).
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.LivenessProbe.HTTPGet)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "http", c.LivenessProbe.HTTPGet.Port.String())
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "http", c.ReadinessProbe.HTTPGet.Port.String())
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		assert.Equal(t, corev1.URISchemeHTTPS, p.HTTPGet.Scheme, "the API is HTTPS with TLS")
	}

	// Termination: the grace period covers the preStop sleep, the
	// leader's handover on SIGTERM (at most two election timeouts, see
	// main_raft.go), the HTTP drain (2 s, httpapi.Server.Wait) and leaves
	// at least 10 s for the final snapshot.
	election := time.Second // RAFT_ELECTION_TIMEOUT's default
	for _, e := range c.Env {
		if e.Name == "RAFT_ELECTION_TIMEOUT" {
			d, err := time.ParseDuration(e.Value)
			require.NoError(t, err)
			election = d
		}
	}
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		require.NotNil(t, c.Lifecycle.PreStop.Sleep, "the image has no shell: preStop can only sleep")
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	require.NotNil(t, pod.Spec.TerminationGracePeriodSeconds)
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	assert.GreaterOrEqual(t, grace, preStop+2*election+2*time.Second+10*time.Second,
		"terminationGracePeriodSeconds leaves no room for preStop, the handover, the drain and a snapshot")
	assert.Equal(t, "/metrics", pod.Annotations["prometheus.io/path"])
	assert.Equal(t, "https", pod.Annotations["prometheus.io/scheme"], "the nodes serve HTTPS")

	// Voluntary disruptions keep a quorum: minAvailable = a majority.
	require.NotNil(t, pdb.Spec.MinAvailable)
	assert.Nil(t, pdb.Spec.MaxUnavailable)
	assert.Equal(t, replicas/2+1, pdb.Spec.MinAvailable.IntValue())
	pdbSel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, pdbSel.Matches(podLabels), "the PodDisruptionBudget covers the pods")

	// Two pods never share a machine.
	require.NotNil(t, pod.Spec.Affinity)
	require.NotNil(t, pod.Spec.Affinity.PodAntiAffinity)
	terms := pod.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	require.Len(t, terms, 1)
	assert.Equal(t, "kubernetes.io/hostname", terms[0].TopologyKey)
	antiSel, err := metav1.LabelSelectorAsSelector(terms[0].LabelSelector)
	require.NoError(t, err)
	assert.True(t, antiSel.Matches(podLabels))

	// Non-root, read-only root file system (the image is FROM scratch).
	require.NotNil(t, pod.Spec.SecurityContext)
	require.NotNil(t, pod.Spec.SecurityContext.RunAsNonRoot)
	assert.True(t, *pod.Spec.SecurityContext.RunAsNonRoot)
	require.NotNil(t, pod.Spec.SecurityContext.FSGroup, "the volume is writable by the non-root user")
	require.NotNil(t, c.SecurityContext)
	require.NotNil(t, c.SecurityContext.ReadOnlyRootFilesystem)
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)

	// Requests cover the measured resident set (BENCHMARKS.md: up to 110 MiB).
	mem := c.Resources.Requests.Memory()
	assert.GreaterOrEqual(t, mem.Value(), int64(110<<20), "memory request %s", mem)
	assert.GreaterOrEqual(t, c.Resources.Limits.Memory().Value(), mem.Value())
	assert.False(t, c.Resources.Requests.Cpu().IsZero())
}

// flagValue returns the argument after name in args ("" if absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestPodCommandServesProbes runs the real raftkv binary the way the pod
// runs it: a one-replica render (on free ports), the container's arguments
// with each volume's mount path mapped to a temporary folder, the
// container's environment with RAFT_NAME = the pod's name. The node
// accepts the generated hostfile, /healthz and /readyz answer 200 (a
// one-node cluster elects itself), and SIGTERM stops it cleanly (exit 0).
func TestPodCommandServesProbes(t *testing.T) {
	ports := freePorts(t, 2)
	objs := decodeAll(t, render(t, "replicas=1", fmt.Sprintf("raftPort=%d", ports[0]), fmt.Sprintf("httpPort=%d", ports[1])))
	require.Len(t, objs.sets, 1)
	require.Len(t, objs.configMaps, 1)
	sts, cm := objs.sets[0], objs.configMaps[0]
	c := sts.Spec.Template.Spec.Containers[0]

	dir := t.TempDir()
	bin := filepath.Join(dir, "raftkv")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	// Each mount path becomes a folder of dir; the ConfigMap's files are
	// written into its mount.
	mapped := map[string]string{}
	for _, m := range c.VolumeMounts {
		local := filepath.Join(dir, "mounts", m.Name)
		require.NoError(t, os.MkdirAll(local, 0o755))
		mapped[m.MountPath] = local
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				require.Equal(t, cm.Name, v.ConfigMap.Name)
				for f, content := range cm.Data {
					require.NoError(t, os.WriteFile(filepath.Join(local, f), []byte(content), 0o644))
				}
			}
		}
	}
	// The TLS Secret holds what `raftkv certs` writes, as docs/deploy.md
	// says to make it.
	pod := sts.Name + "-0"
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			local := mapped[mountOf(t, c, v.Name)]
			require.NoError(t, certs.Init(local, certs.Options{}, false))
			require.NoError(t, certs.Node(local, pod, nil, certs.Options{}, false))
			_, err := certs.AddToken(local, "admin", api.RoleAdmin, false)
			require.NoError(t, err)
		}
	}
	args := append([]string{}, c.Args...)
	for i, a := range args {
		// Kubernetes expands $(VAR) in args from the container's env.
		a = strings.ReplaceAll(a, "$(RAFT_NAME)", pod)
		for mount, local := range mapped {
			if a == mount || strings.HasPrefix(a, mount+"/") {
				a = local + strings.TrimPrefix(a, mount)
			}
		}
		args[i] = a
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+pod)
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		default:
			t.Fatalf("env %s: a source this test does not emulate", e.Name)
		}
	}
	node := startProcess(t, bin, args, env, filepath.Join(dir, "node.log"))

	for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		scheme := strings.ToLower(string(probe.HTTPGet.Scheme))
		require.Equal(t, "https", scheme, "the node serves HTTPS: a plaintext probe would fail")
		waitHTTP200(t, node, fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, ports[1], probe.HTTPGet.Path))
	}
	node.stop(t)
}

// mountOf returns where container c mounts volume name.
func mountOf(t *testing.T, c corev1.Container, name string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m.MountPath
		}
	}
	t.Fatalf("volume %s is not mounted", name)
	return ""
}
