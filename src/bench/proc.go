package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process accounting from Linux's /proc, for the CPU and memory columns of
// `make bench`. pid 0 means this process (/proc/self).

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}

var clockTicks = sync.OnceValue(func() float64 {
	// sysconf(_SC_CLK_TCK) needs cgo; getconf asks it for us. It is 100
	// on every Linux this runs on, which is also the fallback.
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
})

// ProcCPU is the CPU time (user + system) process pid has used so far,
// from fields 14 (utime) and 15 (stime) of /proc/<pid>/stat, in clock
// ticks (1/100 s on Linux).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	ticks, err := parseStatTicks(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", procPath(pid, "stat"), err)
	}
	return time.Duration(float64(ticks) / clockTicks() * float64(time.Second)), nil
}

// parseStatTicks returns utime+stime of a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may hold spaces and ")",
// so the fields are counted after its last ")".
func parseStatTicks(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("no ')' in stat line")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime (14) is f[11], stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat line has %d fields after the name, want at least 13", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime %q or stime %q", f[11], f[12])
	}
	return u + s, nil
}

// ProcRSS is the resident set size of process pid in bytes (VmRSS of
// /proc/<pid>/status).
func ProcRSS(pid int) (int64, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	n, err := parseVmRSS(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", procPath(pid, "status"), err)
	}
	return n, nil
}

func parseVmRSS(b []byte) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bad VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad VmRSS line %q", line)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// Machine describes where a benchmark ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	ClockTick int    `json:"clk_tck"`
}

// ThisMachine reads the machine's description from /proc.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), ClockTick: int(clockTicks()), CPUModel: "unknown", Kernel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// LoadAverage is the first three fields of /proc/loadavg ("" if unreadable).
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
