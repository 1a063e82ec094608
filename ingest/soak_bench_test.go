package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/memlimit"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/simulators"
)

// BenchmarkSoakQCMemory measures what the streaming state holds at the
// design load: the stations of simulators.GenerateRegistry (level with a
// flat-line test of up to 72 h in winter, water temperature with 48 h, flow
// into ecological-flow days), one sample a minute each, fed for eight days:
// the longest QC window (72 h) is full, and so are the days of flow each
// station keeps (eflowKeepDays and the newest), the steady state. The
// messages are hour-long backlogs, every station's hour before the next
// hour, stored as BenchmarkProcess stores them (no broker, spool or
// InfluxDB); the batches are dropped. It runs once whatever b.N is, under
// the memory management of the built binary (memlimit.Manage: 200 % and a
// soft limit of 960 MiB or 1.5 × the live heap, unless GOGC or GOMEMLIMIT
// say otherwise), and reports the heap in use and the resident memory after
// a collection (heap-MiB, rss-MiB), the peak resident memory of the process
// (peak-rss-MiB, VmHWM: run it alone in its process), the soft limit in
// force at the end (limit-MiB), and the heap per station and per value held
// in the QC windows.
//
// RIVERMON_SOAK_STATIONS (default 10,000) and RIVERMON_SOAK_HOURS (default
// 192) change the load, RIVERMON_SOAK_TIMES the sample times: minute (on
// the minute, the default), gaps (a minute missing every 6 hours), seconds
// (within 5 s either side of the minute, in whole seconds, as HJ 212's
// DataTime and loggers' JSON carry them) or millis (up to a second after
// the minute, in milliseconds); RIVERMON_SOAK_HEAPPROFILE names a file for
// a heap profile of the state (go tool pprof -sample_index=inuse_space).
func BenchmarkSoakQCMemory(b *testing.B) {
	stations := envInt(b, "RIVERMON_SOAK_STATIONS", 10000)
	hours := envInt(b, "RIVERMON_SOAK_HOURS", (eflowKeepDays+1)*24)
	times := os.Getenv("RIVERMON_SOAK_TIMES")
	switch times {
	case "":
		times = "minute"
	case "minute", "gaps", "seconds", "millis":
	default:
		b.Fatalf("RIVERMON_SOAK_TIMES=%q: want minute, gaps, seconds or millis", times)
	}
	// Memory as the built binary manages it (cmd/rivermon), and as it was
	// once the benchmark is over.
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	defer debug.SetGCPercent(gc)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	ctx, cancel := context.WithCancel(context.Background())
	managed := make(chan struct{})
	go func() {
		defer close(managed)
		memlimit.Manage(ctx, os.Getenv)
	}()
	defer func() { cancel(); <-managed }()
	reg, err := registry.Load("generated", []byte(simulators.GenerateRegistry(stations)))
	if err != nil {
		b.Fatal(err)
	}
	// January: the stage's winter flat-line window (72 h) is the longest.
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, reading.Zone)
	received := start.Add(time.Duration(hours+1) * time.Hour)
	// The case in the name: make bench runs each in a process of its own.
	b.Run(times, func(b *testing.B) {
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			runtime.GC()
			before := heapInuse()
			s := NewStream(StreamOptions{Registry: reg, TopicPrefix: "rivermon/v1", Intake: NewIntake(IntakeOptions{}),
				Now: func() time.Time { return received }})
			b.StartTimer()
			msgs := make(chan Message, 256)
			go func() {
				defer close(msgs)
				for h := range hours {
					for i := range reg.Stations {
						msgs <- soakMessage(reg.Stations[i].ID, i, h, start, received, times)
					}
				}
			}()
			cur := &batch{}
			for m := range msgs {
				s.store(&m, cur)
				if len(cur.rec.Entries) >= 5000 {
					cur.reset()
				}
			}
			b.StopTimer()
			cur = nil
			runtime.GC()
			heap := heapInuse()
			held := 0
			for _, ss := range s.state {
				for _, ser := range ss.series {
					held += ser.Len()
				}
			}
			if path := os.Getenv("RIVERMON_SOAK_HEAPPROFILE"); path != "" {
				writeHeapProfile(b, path)
			}
			rss, peak := procStatus(b, "VmRSS:"), procStatus(b, "VmHWM:")
			const mib = 1 << 20
			b.ReportMetric(float64(heap)/mib, "heap-MiB")
			b.ReportMetric(float64(rss)/mib, "rss-MiB")
			b.ReportMetric(float64(peak)/mib, "peak-rss-MiB")
			b.ReportMetric(float64(debug.SetMemoryLimit(-1))/mib, "limit-MiB")
			b.ReportMetric(float64(heap-before)/float64(stations)/1024, "KiB/station")
			b.ReportMetric(float64(held)/float64(stations), "qc-values/station")
			b.ReportMetric(float64(heap-before)/float64(held), "B/qc-value")
			runtime.KeepAlive(s)
			b.StartTimer()
		}
	})
}

// soakMessage is station i's hour h: 60 samples a minute apart from start,
// at times as RIVERMON_SOAK_TIMES says. The values are the millimetres,
// hundredths of a degree and litres a second of gauges, within 0.4 m,
// 0.4 °C and 5 m³/s, drawn at random: no run of them is a progression
// that a series could keep without storing each.
func soakMessage(id string, i, h int, start, received time.Time, times string) Message {
	p := make([]byte, 0, 6000)
	p = fmt.Appendf(p, `{"station":%q,"seq":%d,"samples":[`, id, h+1)
	first := true
	for k := range 60 {
		n := h*60 + k
		at := start.Add(time.Duration(n) * time.Minute)
		switch {
		case times == "gaps" && (n+i)%360 == 0:
			continue
		case times == "seconds":
			at = at.Add(time.Duration(int64(mix(uint64(i)<<32|uint64(n)^0x5eed)%11)-5) * time.Second)
		case times == "millis":
			at = at.Add(time.Duration((n*7919+i*104729)%1000) * time.Millisecond)
		}
		if !first {
			p = append(p, ',')
		}
		first = false
		p = append(p, `{"time":`...)
		p = strconv.AppendInt(p, at.UnixMilli(), 10)
		r := mix(uint64(i)<<32 | uint64(n))
		p = append(p, `,"values":{"level_m":`...)
		p = strconv.AppendFloat(p, float64(1000+r%400)/1000, 'f', -1, 64)
		p = append(p, `,"water_temp_c":`...)
		p = strconv.AppendFloat(p, float64(100+r>>16%40)/100, 'f', -1, 64)
		p = append(p, `,"flow_m3s":`...)
		p = strconv.AppendFloat(p, float64(10000+r>>32%5000)/1000, 'f', -1, 64)
		p = append(p, "}}"...)
	}
	p = append(p, "]}"...)
	return Message{Source: SourceMQTT, From: "rivermon/v1/stations/" + id + "/readings", Payload: p, Received: received}
}

// writeHeapProfile writes what the heap holds now (-memprofile writes it
// once the benchmark is over, when the state is gone).
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// mix is SplitMix64's finaliser: a number that looks random for each x.
func mix(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// procStatus reads a size in bytes from /proc/self/status (VmRSS: resident
// now, VmHWM: the peak).
func procStatus(b *testing.B, key string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte(key)); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", key)
	return 0
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}
