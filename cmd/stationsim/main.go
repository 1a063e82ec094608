// Command stationsim stands in for the field stations: it publishes, for
// every station of the registry, readings at the station's interval and
// hourly status messages, each station on its own MQTT connection with a last
// will, in accelerated or real time; optionally its water quality as HJ
// 212-2017 packets and its level, flow, rain and battery as SL 651-2014
// frames, over MQTT or TCP.
//
//	stationsim -broker tcp://127.0.0.1:1883 -start -48h -speed 300
//	stationsim -protocol sl651,hj212 -transport tcp -encoding hex -sl651-addr 127.0.0.1:9651 -hj212-addr 127.0.0.1:9212
//
// A bounded window of the past, at full speed, exiting 0 once everything
// is published (for end-to-end tests):
//
//	stationsim -start 2026-01-10T00:00:00+08:00 -end 2026-01-10T12:00:00+08:00 -speed 1e9 \
//	           -scenario flood:pumqu-chentang -scenario-start 2026-01-10T02:00:00+08:00
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/simulators"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("stationsim", flag.ContinueOnError)
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	username := fs.String("username", "", "MQTT user name")
	password := fs.String("password", "", "MQTT password")
	regPath := fs.String("registry", "configs/stations.yaml", "station registry")
	prefix := fs.String("prefix", "rivermon/v1", "topic prefix")
	stations := fs.String("stations", "", "comma-separated station ids (default: all)")
	start := fs.String("start", "now", `simulated start: `+timeForms)
	end := fs.String("end", "", `simulated end (exclusive): `+timeForms+`; the run stops by itself once everything due before it is published`)
	speed := fs.Float64("speed", 1, "simulated seconds per real second (never ahead of the wall clock)")
	duration := fs.Duration("duration", 0, "simulated time to run, instead of -end (0: until interrupted)")
	scenarioStart := fs.String("scenario-start", "", `when the scenarios start: `+timeForms+` (default: 1 h after -start)`)
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same readings")
	clientID := fs.String("client-id", "stationsim", "prefix of the per-station MQTT client ids")
	protocol := fs.String("protocol", "native", `field protocols, comma-separated: "hj212" (water-quality values as HJ 212-2017 packets), `+
		`"sl651" (level, flow, water temperature, rain and battery as SL 651-2014 frames); native JSON carries the rest`)
	transport := fs.String("transport", "mqtt", `HJ 212 and SL 651: "mqtt" (the station's hj212 and sl651 topics) or "tcp" (to -hj212-addr and -sl651-addr)`)
	hjAddr := fs.String("hj212-addr", "127.0.0.1:9212", "rivermon's HJ 212 listener, for -transport tcp")
	crc := fs.String("crc", "", `with -protocol hj212: frame every packet with this CRC, "hj212" or "modbus" (default: each station's hj212_crc)`)
	slAddr := fs.String("sl651-addr", "127.0.0.1:9651", "rivermon's SL 651 listener, for -transport tcp")
	encoding := fs.String("encoding", "hex", `with -protocol sl651: the frames' encoding, "hex" (HEX/BCD) or "ascii"`)
	var scenarioSpecs []string
	fs.Func("scenario", "name:station[,station…] (repeatable): "+strings.Join(simulators.Scenarios, ", ")+"; starts at -scenario-start",
		func(v string) error { scenarioSpecs = append(scenarioSpecs, strings.Fields(v)...); return nil })
	loadStations := fs.Int("load-stations", 0, "load mode: this many virtual stations (load-00001 …) instead of the registry's")
	writeRegistry := fs.String("write-registry", "", "load mode: write the matching registry to this file and exit")
	rate := fs.Float64("rate", 0, "load mode: messages per second in total (0: as fast as the broker takes them)")
	perMessage := fs.Int("per-message", 1, "load mode: samples per message")
	messages := fs.Int("messages", 10000, "load mode: messages in total")
	connections := fs.Int("connections", 4, "load mode: MQTT connections")
	duplicates := fs.Float64("duplicates", 0, "load mode: share of messages sent twice")
	outOfOrder := fs.Float64("out-of-order", 0, "load mode: share of messages with their samples reversed")
	malformed := fs.Float64("malformed", 0, "load mode: share of messages preceded by a malformed payload")
	outage := fs.String("outage", "", "load mode: STATION[,STATION…]:FROM:FOR — hold messages FROM…FROM+FOR of each and send them as one backlog")
	skew := fs.String("skew", "", "load mode: STATION[,STATION…]:DURATION — shift these stations' clocks")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *loadStations > 0 {
		return runLoad(loadOptions{stations: *loadStations, writeRegistry: *writeRegistry, rate: *rate, perMessage: *perMessage,
			messages: *messages, connections: *connections, duplicates: *duplicates, outOfOrder: *outOfOrder, malformed: *malformed,
			outage: *outage, skew: *skew, broker: *broker, username: *username, password: *password, prefix: *prefix,
			start: *start, seed: *seed, clientID: *clientID})
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	w, err := parseWindow(*start, *end, *duration, *scenarioStart, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "stationsim:", err)
		return 2
	}
	if _, err := simulators.ParseProtocols(*protocol); err != nil {
		fmt.Fprintln(os.Stderr, "stationsim: -protocol:", err)
		return 2
	}
	if *encoding != "hex" && *encoding != "ascii" {
		fmt.Fprintf(os.Stderr, "stationsim: -encoding %q: want hex or ascii\n", *encoding)
		return 2
	}
	if *crc != "" && *crc != "hj212" && *crc != "modbus" {
		fmt.Fprintf(os.Stderr, "stationsim: -crc %q: want hj212 or modbus\n", *crc)
		return 2
	}
	if *transport != "mqtt" && *transport != "tcp" {
		fmt.Fprintf(os.Stderr, "stationsim: -transport %q: want mqtt or tcp\n", *transport)
		return 2
	}
	scenarios, err := simulators.ParseScenarios(scenarioSpecs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stationsim: -scenario:", err)
		return 2
	}
	reg, err := registry.LoadFile(*regPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var ids []string
	for _, id := range strings.Split(*stations, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n := len(ids)
	if n == 0 {
		n = len(reg.Stations)
	}
	until := "interrupted"
	if w.duration > 0 {
		until = w.start.Add(w.duration).UTC().Format(time.RFC3339)
	}
	log.Info("stationsim starting", "broker", *broker, "stations", n,
		"start", w.start.UTC().Format(time.RFC3339), "end", until, "speed", *speed, "seed", *seed)
	sum, err := simulators.Run(ctx, simulators.Options{
		Broker: *broker, Username: *username, Password: *password, TopicPrefix: *prefix,
		Registry: reg, Stations: ids, Start: w.start, Speed: *speed, Duration: w.duration, Seed: *seed,
		ClientID: *clientID, Logger: log, Scenarios: scenarios, ScenarioStart: w.scenarioStart,
		Protocol: *protocol, Transport: *transport, HJ212Addr: *hjAddr, HJ212CRC: *crc, SL651Addr: *slAddr, SL651Encoding: *encoding,
	})
	log.Info("stationsim done", "messages", sum.Messages, "hj212_packets", sum.Packets, "sl651_frames", sum.Frames,
		"sl651_keepalives", sum.KeepAlives, "samples", sum.Samples, "statuses", sum.Statuses,
		"errors", sum.Errors, "sim_end", sum.SimEnd.UTC().Format(time.RFC3339))
	if err != nil {
		log.Error("stationsim failed", "err", err)
		return 1
	}
	return 0
}

// timeForms says what the time flags take.
const timeForms = `RFC 3339 time, "now", or an offset from now such as -48h or +2h`

// parseTime reads a time flag: an RFC 3339 time, "now", or a signed
// duration from now.
func parseTime(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"), strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: want %s", s, timeForms)
		}
		return now.Add(d), nil
	default:
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: want %s", s, timeForms)
		}
		return t, nil
	}
}

// window is the simulated time a run covers.
type window struct {
	start         time.Time
	duration      time.Duration // 0: until interrupted
	scenarioStart time.Time     // zero: the default lead
}

// parseWindow reads -start, -end (or -duration) and -scenario-start.
func parseWindow(start, end string, duration time.Duration, scenarioStart string, now time.Time) (window, error) {
	var w window
	var err error
	if w.start, err = parseTime(start, now); err != nil {
		return w, fmt.Errorf("-start: %w", err)
	}
	switch {
	case duration < 0:
		return w, fmt.Errorf("-duration %s: want a positive duration", duration)
	case end != "" && duration > 0:
		return w, fmt.Errorf("-end and -duration: give one of them")
	case end != "":
		t, err := parseTime(end, now)
		if err != nil {
			return w, fmt.Errorf("-end: %w", err)
		}
		if !t.After(w.start) {
			return w, fmt.Errorf("-end %s is not after -start %s", t.Format(time.RFC3339), w.start.Format(time.RFC3339))
		}
		w.duration = t.Sub(w.start)
	default:
		w.duration = duration
	}
	if scenarioStart != "" {
		if w.scenarioStart, err = parseTime(scenarioStart, now); err != nil {
			return w, fmt.Errorf("-scenario-start: %w", err)
		}
		if w.scenarioStart.Before(w.start) {
			return w, fmt.Errorf("-scenario-start %s is before -start %s: the scenarios would be cut",
				w.scenarioStart.Format(time.RFC3339), w.start.Format(time.RFC3339))
		}
	}
	return w, nil
}

type loadOptions struct {
	stations                                  int
	writeRegistry                             string
	rate                                      float64
	perMessage, messages, connections         int
	duplicates, outOfOrder, malformed         float64
	outage, skew                              string
	broker, username, password, prefix, start string
	seed                                      uint64
	clientID                                  string
}

func runLoad(l loadOptions) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if l.writeRegistry != "" {
		if err := os.WriteFile(l.writeRegistry, []byte(simulators.GenerateRegistry(l.stations)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("wrote a registry of %d virtual stations to %s\n", l.stations, l.writeRegistry)
		return 0
	}
	t0, err := parseTime(l.start, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "stationsim: -start:", err)
		return 2
	}
	o := simulators.LoadOptions{Broker: l.broker, Username: l.username, Password: l.password, TopicPrefix: l.prefix,
		Stations: l.stations, Rate: l.rate, PerMessage: l.perMessage, Messages: l.messages, Connections: l.connections,
		Start: t0, Seed: l.seed, Duplicates: l.duplicates, OutOfOrder: l.outOfOrder, Malformed: l.malformed,
		ClientID: l.clientID, Logger: log}
	if l.outage != "" {
		parts := strings.Split(l.outage, ":")
		if len(parts) != 3 {
			fmt.Fprintln(os.Stderr, "stationsim: -outage: want STATION[,STATION…]:FROM:FOR")
			return 2
		}
		o.OutageStations = strings.Split(parts[0], ",")
		o.OutageFrom, _ = strconv.Atoi(parts[1])
		o.OutageFor, _ = strconv.Atoi(parts[2])
	}
	if l.skew != "" {
		ids, d, ok := strings.Cut(l.skew, ":")
		dur, err := time.ParseDuration(d)
		if !ok || err != nil {
			fmt.Fprintln(os.Stderr, "stationsim: -skew: want STATION[,STATION…]:DURATION")
			return 2
		}
		o.SkewStations, o.Skew = strings.Split(ids, ","), dur
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sum, err := simulators.RunLoad(ctx, o)
	log.Info("load done", "messages", sum.Messages, "samples", sum.Samples, "duplicates", sum.Duplicates, "malformed", sum.Malformed,
		"backlogs", sum.Backlogs, "errors", sum.Errors, "elapsed", sum.Elapsed.Round(time.Millisecond),
		"rate_msgs_s", int(float64(sum.Messages)/sum.Elapsed.Seconds()))
	if err != nil {
		log.Error("load failed", "err", err)
		return 1
	}
	return 0
}
