// Command rivermon ingests river-monitoring data from MQTT into InfluxDB.
//
//	rivermon [-config FILE]        run the service
//	         [-cpuprofile FILE]    and write a CPU profile until it stops
//	rivermon check [-config FILE]  validate every config file
//	rivermon version
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/rivermon/rivermon/cmd/rivermon/app"
	"github.com/rivermon/rivermon/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "check" || args[0] == "version" || args[0] == "run") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("rivermon "+cmd, flag.ContinueOnError)
	configFile := fs.String("config", "configs/rivermon.yaml", "service config file")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) to `file` until the service stops")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch cmd {
	case "version":
		fmt.Println("rivermon", buildVersion())
		return 0
	case "check":
		problems := app.Check(*configFile)
		for _, p := range problems {
			fmt.Println(p)
		}
		if len(problems) > 0 {
			return 1
		}
		fmt.Println("ok")
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "-log-level %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := config.LoadFile(*configFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if os.Getenv("GOGC") == "" {
		// Collect garbage at three times the live heap rather than twice:
		// the heap is small (a few MiB at idle), and under a full load this
		// trades some tens of MiB for about a tenth of the CPU. GOGC, when
		// set, decides instead.
		debug.SetGCPercent(200)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "-cpuprofile: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	log.Info("rivermon starting", "version", buildVersion(), "config", *configFile)
	if err := app.Run(ctx, app.Options{Config: cfg, Logger: log, Reload: reload}); err != nil {
		log.Error("rivermon failed", "err", err)
		return 1
	}
	return 0
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
