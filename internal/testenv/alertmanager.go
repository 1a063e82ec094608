package testenv

import (
	"fmt"
	"path/filepath"
	"testing"
)

// Alertmanager is a running Prometheus Alertmanager.
type Alertmanager struct {
	*Process
	URL string
}

// StartAlertmanager starts Alertmanager with config (alertmanager.yml
// content), no clustering, and its storage in a temporary folder.
func StartAlertmanager(t testing.TB, config string) *Alertmanager {
	t.Helper()
	bin := FindBinary(t, "prometheus-alertmanager", "RIVERMON_ALERTMANAGER")
	dir := t.TempDir()
	port := FreePort(t)
	confPath := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, confPath, config)
	p := startProcess(t, "alertmanager", bin, port, filepath.Join(dir, "alertmanager.log"),
		"--config.file="+confPath,
		"--storage.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--cluster.listen-address=",
	)
	return &Alertmanager{Process: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
}
