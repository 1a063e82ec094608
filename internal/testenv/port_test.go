package testenv

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreePort hands out distinct ports below the kernel's ephemeral range,
// which outgoing connections draw from.
func TestFreePortAvoidsTheEphemeralRange(t *testing.T) {
	lo, hi := portRange()
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if p < lo || p >= hi || seen[p] {
			t.Fatalf("port %d: outside %d–%d or given twice", p, lo, hi-1)
		}
		seen[p] = true
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if start, _ := strconv.Atoi(strings.Fields(string(b))[0]); start > 25000 && hi > start {
			t.Errorf("range ends at %d, past the ephemeral start %d", hi, start)
		}
	}
}
