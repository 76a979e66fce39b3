package bench

import (
	"strings"
	"testing"
)

func TestParseStatTicks(t *testing.T) {
	// A command name with spaces and ")" must not shift the fields.
	line := "4242 (raft kv) (x)) S 1 4242 4242 0 -1 4194560 1200 0 0 0 1234 567 0 0 20 0 12 0 100 123456 789 18446744073709551615\n"
	got, err := parseStatTicks([]byte(line))
	if err != nil || got != 1234+567 {
		t.Fatalf("parseStatTicks = %d, %v; want 1801", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 u s 0"} {
		if _, err := parseStatTicks([]byte(bad)); err == nil {
			t.Errorf("parseStatTicks(%q): no error", bad)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\traftkv\nVmPeak:\t  900000 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n"
	if got, err := parseVmRSS([]byte(status)); err != nil || got != 51200*1024 {
		t.Fatalf("parseVmRSS = %d, %v", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("parseVmRSS(%q): no error", bad)
		}
	}
}

func TestProcSelf(t *testing.T) {
	// Burn a little CPU so that at least one clock tick is charged.
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	cpu, err := ProcCPU(0)
	if err != nil || cpu <= 0 {
		t.Errorf("ProcCPU(self) = %v, %v (x=%d)", cpu, err, x)
	}
	rss, err := ProcRSS(0)
	if err != nil || rss < 1<<20 {
		t.Errorf("ProcRSS(self) = %d, %v", rss, err)
	}
	if m := ThisMachine(); m.CPUs < 1 || m.ClockTick < 1 || !strings.HasPrefix(m.GoVersion, "go") {
		t.Errorf("ThisMachine() = %+v", m)
	}
}
