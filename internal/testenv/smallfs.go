package testenv

import (
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"testing"
)

// SmallFS returns a command that runs name with args in a mount namespace
// of its own, with a file system of size bytes (tmpfs) mounted at dir: a
// disk that really fills up, made without root through an unprivileged
// user namespace (util-linux unshare). Files written under dir are seen by
// that command only. A system that allows no user namespaces (some
// containers) skips the test, saying why.
func SmallFS(t testing.TB, dir string, size int64, name string, args ...string) *exec.Cmd {
	t.Helper()
	smallFSOnce.Do(func() {
		out, err := exec.Command("unshare", "--user", "--map-root-user", "--mount",
			"sh", "-c", `mount -t tmpfs -o size=64k rivermon-probe "$1"`, "sh", t.TempDir()).CombinedOutput()
		if err != nil {
			smallFSErr = fmt.Sprintf("%v: %s", err, out)
		}
	})
	if smallFSErr != "" {
		t.Skipf("no small file system: unshare/mount without root failed here (%s)", smallFSErr)
	}
	script := `mount -t tmpfs -o size="$1" rivermon-test "$2" && shift 2 && exec "$@"`
	return exec.Command("unshare", append([]string{"--user", "--map-root-user", "--mount",
		"sh", "-c", script, "sh", strconv.FormatInt(size, 10), dir, name}, args...)...)
}

var (
	smallFSOnce sync.Once
	smallFSErr  string
)
