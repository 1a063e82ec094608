// Command rivermon ingests river-monitoring data from MQTT into InfluxDB.
//
//	rivermon [run] [-config FILE] [-log-level LEVEL] [-cpuprofile FILE]
//	                               run the service
//	rivermon check [-config FILE]  validate every config file
//	rivermon correct [FLAGS]       make or undo a correction through the HTTP API
//	rivermon reprocess -station ID -from TIME -to TIME [-url URL] [-token-file FILE]
//	                               recompute rated flows after a rating change
//	rivermon version               print the version
//	rivermon help [COMMAND]        print the usage
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/rivermon/rivermon/cmd/rivermon/app"
	"github.com/rivermon/rivermon/internal/config"
	"github.com/rivermon/rivermon/internal/memlimit"
)

// version is set at build time with -ldflags "-X main.version=...";
// `make build` sets it to `git describe --tags --always --dirty`.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commandList is what usage says of each command, in the order it lists them.
const commandList = `Commands:
  run      run the service (the default when no command is given)
  check    validate the service config, stations and rules; exit 1 with FILE:LINE: message lines
  correct  make a correction of stored values, or undo one (-undo ID), through rivermon's HTTP API
  reprocess  recompute a station's rated flows over a time range in the running service
             (after a rating version or shift was added for the past)
  version  print the version
  help     print this help, or a command's (rivermon help check)
`

// options are the values of every command's flags.
type options struct {
	config, logLevel, cpuProfile string
	correct                      correctFlags
}

// flags returns the flag set of a command (run, check, version or help),
// filling o. Its Usage does nothing: run prints the usage itself, to stdout
// when asked for and to stderr after a mistake.
func flags(cmd string, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rivermon "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	if cmd == "run" || cmd == "check" {
		fs.StringVar(&o.config, "config", "configs/rivermon.yaml", "service config `file`")
	}
	if cmd == "correct" {
		o.correct.register(fs)
	}
	if cmd == "run" {
		fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
		fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) to `file` until the service stops")
	}
	return fs
}

// usage writes the usage of cmd, or of every command when cmd is "".
func usage(w io.Writer, cmd string) {
	var o options
	printFlags := func(cmd string) {
		fs := flags(cmd, &o, io.Discard)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	switch cmd {
	case "":
		fmt.Fprint(w, "Usage: rivermon [COMMAND] [FLAGS]\n\n"+commandList)
		fmt.Fprintln(w, "\nFlags of run:")
		printFlags("run")
		fmt.Fprintln(w, "\nFlags of check:")
		printFlags("check")
		fmt.Fprintln(w, "\nFlags of correct:")
		printFlags("correct")
		fmt.Fprintln(w, "\nversion and help take no flags. -h, -help or --help after any command prints its usage.")
	case "run":
		fmt.Fprint(w, "Usage: rivermon [run] [FLAGS]\n\nRun the service until SIGTERM or SIGINT; SIGHUP reloads the alert rules.\n\nFlags:\n")
		printFlags("run")
	case "check":
		fmt.Fprint(w, "Usage: rivermon check [-config FILE]\n\nLoad and validate every config file (service, stations, rules); print ok and exit 0,\nor print one FILE:LINE: message line per problem and exit 1. Warnings\n(FILE:LINE: warning: message) are printed and do not fail the check.\n\nFlags:\n")
		printFlags("check")
	case "correct":
		fmt.Fprint(w, "Usage: rivermon correct -station ID -param CODE -op delete|set|offset|drift -from TIME -to TIME [-value V] -author NAME -reason TEXT [-force]\n"+
			"       rivermon correct -undo ID\n\nMake a correction of stored values (times RFC 3339, inclusive) or undo one, through\n"+
			"rivermon's HTTP API with the bearer token of http.admin_token_file; print the id\n(or the server's error, exit 1).\n\nFlags:\n")
		printFlags("correct")
	case "reprocess":
		reprocessUsage(w)
	case "version":
		fmt.Fprintln(w, "Usage: rivermon version\n\nPrint the version.")
	case "help":
		fmt.Fprintln(w, "Usage: rivermon help [COMMAND]\n\nPrint the usage of rivermon, or of one command.")
	}
}

func isCommand(s string) bool {
	return s == "run" || s == "check" || s == "correct" || s == "version" || s == "help" || s == "reprocess"
}

// run runs the command line args and returns the exit status: 0 done, 1
// failed, 2 the command line is wrong. Usage asked for (help, -h, -help,
// --help) goes to stdout with status 0; after a mistake, to stderr with 2.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, explicit := "run", false
	if len(args) > 0 && (args[0] == "" || args[0][0] != '-') {
		if !isCommand(args[0]) {
			fmt.Fprintf(stderr, "rivermon: unknown command %q\n\n", args[0])
			usage(stderr, "")
			return 2
		}
		cmd, explicit, args = args[0], true, args[1:]
	}
	if cmd == "reprocess" {
		return reprocessCommand(args, stdout, stderr)
	}
	helpFor := cmd // the usage a mistake or -h prints: "" is all of it
	if !explicit {
		helpFor = ""
	}
	var o options
	fs := flags(cmd, &o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, helpFor)
			return 0
		}
		fmt.Fprintln(stderr)
		usage(stderr, helpFor)
		return 2
	}
	if cmd == "help" && fs.NArg() > 0 {
		topic := fs.Arg(0)
		if !isCommand(topic) {
			fmt.Fprintf(stderr, "rivermon help: unknown command %q\n\n", topic)
			usage(stderr, "")
			return 2
		}
		if fs.NArg() > 1 {
			fmt.Fprintf(stderr, "rivermon help: unexpected argument %q\n\n", fs.Arg(1))
			usage(stderr, "help")
			return 2
		}
		if topic == "help" {
			topic = ""
		}
		usage(stdout, topic)
		return 0
	}
	if fs.NArg() > 0 {
		stray := fs.Arg(0)
		fmt.Fprintf(stderr, "rivermon: unexpected argument %q", stray)
		if isCommand(stray) {
			fmt.Fprintf(stderr, " (the command comes before its flags: rivermon %s -config FILE)", stray)
		}
		fmt.Fprint(stderr, "\n\n")
		usage(stderr, helpFor)
		return 2
	}
	switch cmd {
	case "help":
		usage(stdout, "")
		return 0
	case "version":
		bi, _ := debug.ReadBuildInfo()
		fmt.Fprintln(stdout, "rivermon", versionOf(version, bi))
		return 0
	case "check":
		problems, warnings := app.Check(o.config)
		for _, p := range append(problems, warnings...) {
			fmt.Fprintln(stdout, p)
		}
		if len(problems) > 0 {
			return 1
		}
		fmt.Fprintln(stdout, "ok")
		return 0
	case "correct":
		return correct(o.correct, stdout, stderr)
	}
	return serve(o, stderr)
}

// serve runs the service until SIGTERM or SIGINT.
func serve(o options, stderr io.Writer) int {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "rivermon: -log-level %q: want debug, info, warn or error\n", o.logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := config.LoadFile(o.config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Deferred first, so run last: after stop has ended ctx, which ends
	// the forwarder. (Waiting before stop hung every return that no
	// signal caused, a -cpuprofile that cannot be written or app.Run's
	// error.)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending
				}
			}
		}
	})
	// Collect garbage at 200 % of the live heap under a soft limit of
	// 960 MiB (issue #17: with 10,000 stations the QC windows and flow days
	// hold hundreds of MiB, and a restart's rebuild or a backlog would
	// otherwise let the process grow to three times that); GOGC and
	// GOMEMLIMIT, when set, decide instead.
	wg.Go(func() { memlimit.Manage(ctx, os.Getenv) })
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "rivermon: -cpuprofile: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	bi, _ := debug.ReadBuildInfo()
	log.Info("rivermon starting", "version", versionOf(version, bi), "config", o.config)
	if err := app.Run(ctx, app.Options{Config: cfg, Logger: log, Reload: reload}); err != nil {
		log.Error("rivermon failed", "err", err)
		return 1
	}
	return 0
}

// versionOf says which build this is: the version set with -ldflags, else
// the module version the go command recorded (a release tag for go install
// …@v1.2.3, or since Go 1.24 a pseudo-version from the VCS such as
// v0.0.0-20261203021400-87f4d36abcde+dirty), else the VCS revision
// (vcs.revision, "-dirty" when vcs.modified), else "dev". Never "(devel)",
// the go command's placeholder for "not known", which says nothing.
func versionOf(ldflags string, bi *debug.BuildInfo) string {
	if ldflags != "" {
		return ldflags
	}
	if bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}
