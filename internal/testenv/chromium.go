package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is a headless Chromium (Debian's chromium) driven over the
// DevTools protocol, for tests of the operations page. It records every
// request the page makes and every JavaScript error it meets.
type Browser struct {
	// Ctx is a chromedp context on the browser's one tab: pass it to
	// chromedp.Do and chromedp.Run.
	Ctx context.Context

	mu       sync.Mutex
	requests []string
	problems []string
}

// chromiumFlags keep a headless Chromium, running as root in a container
// on a closed network, from doing anything but show the page: no sandbox
// (root), no GPU, and none of its own calls home (updates, sync, field
// trials, QUIC probes), which would otherwise be refused one by one.
var chromiumFlags = []chromedp.ExecAllocatorOption{
	chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-extensions", true),
	chromedp.Flag("disable-default-apps", true),
	chromedp.Flag("disable-breakpad", true),
	chromedp.Flag("disable-client-side-phishing-detection", true),
	chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"),
	chromedp.Flag("disable-dev-shm-usage", true),
	chromedp.Flag("metrics-recording-only", true),
	chromedp.Flag("no-pings", true),
	chromedp.Flag("hide-scrollbars", true),
	chromedp.Flag("force-color-profile", "srgb"),
	chromedp.Flag("lang", "en-US"),
}

// StartChromium starts Chromium with a fresh profile in a temporary
// folder and stops it when the test ends. Without the chromium program the
// test is skipped, or fails under CI=true (scripts/deps.sh installs it).
func StartChromium(t testing.TB) *Browser {
	t.Helper()
	bin := FindBinary(t, "chromium", "RIVERMON_CHROMIUM")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "chromium.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.CombinedOutput(logf), chromedp.WindowSize(1280, 800)}, chromiumFlags...)
	allocCtx, stopAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{}
	ctx, stopTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.record))
	b.Ctx = ctx
	t.Cleanup(func() {
		// Close the browser gracefully, then make sure its process is gone
		// before the profile folder is removed.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("chromium close: %v", err)
		}
		cancel()
		stopTab()
		stopAlloc()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("chromium log (last lines):\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
			}
		}
	})
	err = chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{})
		return err
	}))
	if err != nil {
		t.Fatalf("chromium %s: %v", bin, err)
	}
	return b
}

// record runs on the tab's reading goroutine: it only appends.
func (b *Browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request != nil {
			b.requests = append(b.requests, e.Request.URL)
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range e.Args {
				args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			b.problems = append(b.problems, "console."+string(e.Type)+": "+strings.Join(args, " "))
		}
	case *cdplog.EventEntryAdded:
		if e.Entry != nil && e.Entry.Level == cdplog.EntryLevelError {
			b.problems = append(b.problems, fmt.Sprintf("%s error: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	}
}

// Requests returns the URL of every request the browser's tab made so far.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// Problems returns the JavaScript exceptions, console errors and browser
// errors (a refused script or request, a policy violation) seen so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}
