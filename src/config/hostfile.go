package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Peer is one Raft node of the hostfile.
type Peer struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	RaftPort int    `json:"raft_port"`
	HTTPPort int    `json:"http_port"`
	// Listen, optional, is the host or IP this node binds its ports on
	// (listen.go), when it differs from how others reach it (Host): a
	// node behind NAT, or one that must bind one interface of several.
	// "0.0.0.0" or "::" binds every interface. --listen overrides it.
	Listen string `json:"listen,omitempty"`
	// Join marks a node that is not part of the cluster's bootstrap
	// configuration: it was, or is to be, added to a running cluster
	// (`raftkv member add`). Such a node never bootstraps; the others
	// neither wait for it at a bootstrap nor count it in the ClusterID, so
	// the hostfile of a node added later (the cluster's hostfile plus its
	// own entry, marked join) names the same cluster as the others'.
	// Entries marked join come after every other one.
	Join bool `json:"join,omitempty"`
}

// RaftAddr is where other nodes dial this node: host:raft_port.
func (p Peer) RaftAddr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.RaftPort)) }

// HTTPAddr is where clients reach this node's HTTP API: host:http_port.
func (p Peer) HTTPAddr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.HTTPPort)) }

// ClientEntry is one client node of the hostfile.
type ClientEntry struct {
	Name     string `json:"name"`
	Datafile string `json:"datafile"`
}

// Hostfile is a validated hostfile. Raft[i] is the node with ID i.
type Hostfile struct {
	Path    string        `json:"-"` // the file it was read from
	Raft    []Peer        `json:"raft"`
	Clients []ClientEntry `json:"clients"`
}

// MaxNameLen bounds node names, which become folder names.
const MaxNameLen = 64

// LoadHostfile reads and validates the hostfile at path. The error joins
// every problem found, each naming the file, the field and the value.
func LoadHostfile(path string) (*Hostfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hostfile: %w", err)
	}
	return ParseHostfile(path, data)
}

// ParseHostfile validates a hostfile's content; path is used in messages.
func ParseHostfile(path string, data []byte) (*Hostfile, error) {
	p := &parser{file: path, data: data}
	h := p.hostfile()
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	h.Path = path
	return h, nil
}

// ClusterID names the cluster: a hash of the raft names in order, as hex,
// of the nodes not marked join (the bootstrap configuration). Hostfiles
// that differ only in hosts and ports, or in nodes marked join, have the
// same ClusterID.
func (h *Hostfile) ClusterID() string {
	sum := sha256.New()
	io.WriteString(sum, "raftkv cluster v1\n")
	for _, p := range h.Raft[:h.BootstrapSize()] {
		// Names hold no newline (validated), so the encoding is unambiguous.
		io.WriteString(sum, p.Name+"\n")
	}
	return hex.EncodeToString(sum.Sum(nil)[:16])
}

// BootstrapSize is the number of nodes of the bootstrap configuration:
// those not marked join, which come first (IDs 0 to BootstrapSize-1).
func (h *Hostfile) BootstrapSize() int {
	n := 0
	for n < len(h.Raft) && !h.Raft[n].Join {
		n++
	}
	return n
}

// IDOf returns the ID (position in the raft list) of the Raft node name.
func (h *Hostfile) IDOf(name string) (int, bool) {
	for i, p := range h.Raft {
		if p.Name == name {
			return i, true
		}
	}
	return -1, false
}

// Names returns the Raft nodes' names in ID order.
func (h *Hostfile) Names() []string {
	names := make([]string, len(h.Raft))
	for i, p := range h.Raft {
		names[i] = p.Name
	}
	return names
}

// HTTPAddrs returns the Raft nodes' HTTP addresses in ID order.
func (h *Hostfile) HTTPAddrs() []string {
	addrs := make([]string, len(h.Raft))
	for i, p := range h.Raft {
		addrs[i] = p.HTTPAddr()
	}
	return addrs
}

// Client returns the client entry called name.
func (h *Hostfile) Client(name string) (ClientEntry, bool) {
	for _, c := range h.Clients {
		if c.Name == name {
			return c, true
		}
	}
	return ClientEntry{}, false
}

// parser reads a hostfile field by field, so that it can report every
// problem, and tell a missing field from an empty one.
type parser struct {
	file string
	data []byte
	errs []error
}

// failf records a problem: "<file>: <where> <what>".
func (p *parser) failf(where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + " " + msg
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %s", p.file, msg))
}

// object reads raw as a JSON object and returns its fields in order. It
// reports unknown and repeated fields at where, and returns false if raw is
// not an object.
func (p *parser) object(where string, raw json.RawMessage, known ...string) (map[string]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		p.failf(where, "%s is not an object", short(raw))
		return nil, false
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			p.failf(where, "is not valid JSON: %v", err)
			return nil, false
		}
		name := tok.(string) // object keys are strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			p.failf(where, "is not valid JSON: %v", err)
			return nil, false
		}
		at := join(where, name)
		switch {
		case !slices.Contains(known, name):
			p.failf(where, "has an unknown field %q (known: %s)", name, strings.Join(known, ", "))
		case fields[name] != nil:
			p.failf(at, "is given twice")
		default:
			fields[name] = v
		}
	}
	return fields, true
}

// array reads raw as a JSON array; null is an empty array.
func (p *parser) array(where string, raw json.RawMessage) ([]json.RawMessage, bool) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		p.failf(where, "%s is not a list", short(raw))
		return nil, false
	}
	return items, true
}

// str reads a required, non-empty string field.
func (p *parser) str(where string, fields map[string]json.RawMessage, name string) string {
	at := join(where, name)
	raw, ok := fields[name]
	if !ok {
		p.failf(at, "is missing")
		return ""
	}
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil || s == nil {
		p.failf(at, "%s is not a string", short(raw))
		return ""
	}
	if *s == "" {
		p.failf(at, `"" is empty`)
	}
	return *s
}

// port reads a required port number field.
func (p *parser) port(where string, fields map[string]json.RawMessage, name string) int {
	at := join(where, name)
	raw, ok := fields[name]
	if !ok {
		p.failf(at, "is missing")
		return 0
	}
	var n json.Number
	// (encoding/json would also take a number in quotes: refuse those.)
	if err := json.Unmarshal(raw, &n); err != nil || n == "" || bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
		p.failf(at, "%s is not a number", short(raw))
		return 0
	}
	v, err := strconv.Atoi(n.String())
	if err != nil {
		p.failf(at, "%s is not a whole number", n)
		return 0
	}
	if v < 1 || v > 65535 {
		p.failf(at, "%d is out of range 1..65535", v)
		return 0
	}
	return v
}

// name checks a node name: it becomes a folder name and a log field.
func (p *parser) name(at, s string) {
	if s == "" {
		return // already reported
	}
	if len(s) > MaxNameLen {
		p.failf(at, "%q is longer than %d bytes", s, MaxNameLen)
		return
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			p.failf(at, "%q may hold only letters, digits, '.', '_' and '-'", s)
			return
		}
	}
	if s == "." || s == ".." {
		p.failf(at, "%q is not a usable name", s)
	}
}

func (p *parser) hostfile() *Hostfile {
	h := &Hostfile{}
	dec := json.NewDecoder(bytes.NewReader(p.data))
	var top json.RawMessage
	if err := dec.Decode(&top); err != nil {
		p.syntax(err)
		return h
	}
	if _, err := dec.Token(); err != io.EOF {
		p.failf("", "has data after the top-level object")
		return h
	}
	fields, ok := p.object("", top, "raft", "clients")
	if !ok {
		return h
	}

	// names and addrs map what must be unique to where it was first used.
	names := map[string]string{}
	addrs := map[string]string{}

	raw, ok := fields["raft"]
	if !ok {
		p.failf("raft", "is missing: list the Raft nodes")
	} else if items, ok := p.array("raft", raw); ok {
		if len(items) == 0 {
			p.failf("raft", "is empty: list at least one Raft node")
		}
		defer func() {
			if len(h.Raft) > 0 && h.Raft[0].Join {
				p.failf("raft", "marks every node join: at least the first one must bootstrap the cluster")
			}
		}()
		for i, item := range items {
			where := fmt.Sprintf("raft[%d]", i)
			f, ok := p.object(where, item, "name", "host", "raft_port", "http_port", "listen", "join")
			if !ok {
				continue
			}
			peer := Peer{
				Name:     p.str(where, f, "name"),
				Host:     p.str(where, f, "host"),
				RaftPort: p.port(where, f, "raft_port"),
				HTTPPort: p.port(where, f, "http_port"),
			}
			if _, given := f["listen"]; given {
				peer.Listen = p.str(where, f, "listen")
				if peer.Listen != "" {
					if _, err := parseListenHost(peer.Listen); err != nil {
						p.failf(where+".listen", "%q: %v", peer.Listen, err)
					}
				}
			}
			if raw, given := f["join"]; given {
				if err := json.Unmarshal(raw, &peer.Join); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
					p.failf(where+".join", "%s is not true or false", short(raw))
				}
			}
			if !peer.Join && len(h.Raft) > 0 && h.Raft[len(h.Raft)-1].Join {
				p.failf(where, "%q is not marked join but follows a node that is: nodes marked join come last (an ID is a position)", peer.Name)
			}
			p.name(where+".name", peer.Name)
			p.unique(names, where+".name", peer.Name, peer.Name)
			if peer.Host != "" && strings.ContainsFunc(peer.Host, isSpaceOrControl) {
				p.failf(where+".host", "%q holds white space or control characters", peer.Host)
			}
			if peer.Host != "" {
				host := strings.ToLower(peer.Host)
				if peer.RaftPort != 0 {
					p.uniqueAddr(addrs, where+".raft_port", peer.RaftPort, net.JoinHostPort(host, strconv.Itoa(peer.RaftPort)))
				}
				if peer.HTTPPort != 0 {
					p.uniqueAddr(addrs, where+".http_port", peer.HTTPPort, net.JoinHostPort(host, strconv.Itoa(peer.HTTPPort)))
				}
			}
			h.Raft = append(h.Raft, peer)
		}
	}

	if raw, ok := fields["clients"]; ok {
		if items, ok := p.array("clients", raw); ok {
			for i, item := range items {
				where := fmt.Sprintf("clients[%d]", i)
				f, ok := p.object(where, item, "name", "datafile")
				if !ok {
					continue
				}
				c := ClientEntry{Name: p.str(where, f, "name"), Datafile: p.str(where, f, "datafile")}
				p.name(where+".name", c.Name)
				p.unique(names, where+".name", c.Name, c.Name)
				h.Clients = append(h.Clients, c)
			}
		}
	}
	return h
}

// unique reports value at `at` if key was used before.
func (p *parser) unique(seen map[string]string, at, key, value string) {
	if key == "" {
		return
	}
	if first, ok := seen[key]; ok {
		p.failf(at, "%q is used twice: also %s", value, first)
		return
	}
	seen[key] = at
}

func (p *parser) uniqueAddr(seen map[string]string, at string, port int, addr string) {
	if first, ok := seen[addr]; ok {
		p.failf(at, "%d is used twice: %s is also %s", port, addr, first)
		return
	}
	seen[addr] = at
}

// syntax reports a JSON error with its line and column.
func (p *parser) syntax(err error) {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(p.data, se.Offset)
		p.failf("", "is not valid JSON: line %d, column %d: %v", line, col, err)
	case errors.Is(err, io.EOF):
		p.failf("", "is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		p.failf("", "is not valid JSON: it ends too soon")
	default:
		p.failf("", "is not valid JSON: %v", err)
	}
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

func join(where, name string) string {
	if where == "" {
		return name
	}
	return where + "." + name
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// short shows a raw JSON value in a message, cut to a readable length.
func short(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}
