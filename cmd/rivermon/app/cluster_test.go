package app_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestClusteredBrokerLosesNothingWhenANodeDies runs rivermon against a
// three-node NATS cluster made from the shipped configs/nats (MQTT on
// JetStream, every MQTT stream on all three nodes; ports and folders moved
// to the test's) with mqtt.urls listing the three MQTT listeners. A station
// connected to another node publishes 10,000 samples at QoS 1; halfway, the
// node rivermon is connected to, which also leads the stream holding the
// messages, is killed (SIGKILL). rivermon moves to a surviving node, its
// session with it, and InfluxDB ends up with every sample, each with its
// value.
func TestClusteredBrokerLosesNothingWhenANodeDies(t *testing.T) {
	in := testenv.StartInflux(t)
	cl := testenv.StartNATSCluster(t, testenv.NATSClusterOptions{Conf: shippedNATSConf(t)})
	t.Logf("NATS cluster: JetStream meta leader %.2f s after start", cl.LeaderAt.Sub(cl.Started).Seconds())

	// The first MQTT client makes the account's MQTT streams.
	probe, err := testenv.Dial(t, testenv.ClientOptions{URL: cl.Nodes[0].MQTTURL, ID: "probe", Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	firstSession := time.Since(cl.Started)
	probe.Disconnect(0)
	t.Logf("NATS cluster: first MQTT session accepted %.2f s after start", firstSession.Seconds())

	// rivermon's first broker is the node leading the messages stream: the
	// worst node to lose.
	var leader *testenv.NATSNode
	testenv.Eventually(t, 10*time.Second, func() bool {
		leader = cl.Node(cl.StreamLeader("$MQTT_msgs"))
		return leader != nil
	}, "no leader of $MQTT_msgs")
	urls := []string{leader.MQTTURL}
	for _, n := range cl.Nodes {
		if n != leader {
			urls = append(urls, n.MQTTURL)
		}
	}
	const clientID = "rivermon-cluster"
	svc := startServiceWith(t, nil, in, serviceOptions{clientID: clientID, mqURLs: urls})
	if cl.NodeOf(clientID) != leader {
		t.Fatalf("rivermon is not connected to %s, its first broker", leader.Name)
	}
	var other *testenv.NATSNode
	for _, n := range cl.Nodes {
		if n != leader {
			other = n
			break
		}
	}
	pub, err := testenv.Dial(t, testenv.ClientOptions{URL: other.MQTTURL, ID: "station-cluster", Retry: true})
	if err != nil {
		t.Fatal(err)
	}

	const messages, perMessage = 1000, 10
	const station = "yarlung-dazhuka"
	base := time.Now().UTC().Truncate(time.Second).Add(-48 * time.Hour)
	level := func(i int) float64 { return 2 + float64(i%5000)/1000 }
	var published atomic.Int64
	errs := make(chan error, 1)
	// The publisher stops when the test ends, passed or not.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	wg.Go(func() {
		for m := range messages {
			var samples []any
			for j := range perMessage {
				i := m*perMessage + j
				samples = append(samples, map[string]any{"time": base.Add(time.Duration(i) * time.Second).UnixMilli(),
					"values": map[string]any{"level_m": level(i)}})
			}
			payload, _ := json.Marshal(map[string]any{"station": station, "seq": m + 1, "samples": samples})
			// At least once: a publish the broker did not acknowledge
			// (its stream changing leader) is sent again.
			for try := 0; ; try++ {
				tok := pub.Client.Publish(readingsTopic(station), 1, false, payload)
				acked := false
				select {
				case <-tok.Done():
					acked = tok.Error() == nil
				case <-time.After(10 * time.Second):
				case <-stop:
					return
				}
				if acked {
					break
				}
				if try == 10 {
					errs <- fmt.Errorf("message %d not acknowledged after %d tries: %v", m, try+1, tok.Error())
					return
				}
			}
			published.Add(1)
		}
		errs <- nil
	})

	testenv.Eventually(t, 30*time.Second, func() bool { return published.Load() >= messages/2 }, "the first half was not published")
	sessLeader := cl.StreamLeader("$MQTT_sess")
	killed, atKill := time.Now(), published.Load()
	leader.Kill(syscall.SIGKILL)
	var failover time.Duration
	testenv.Eventually(t, 60*time.Second, func() bool {
		if svc.metric("rivermon_mqtt_connections_total") < 2 {
			return false
		}
		failover = time.Since(killed)
		return true
	}, "rivermon did not reconnect after %s was killed", leader.Name)
	now := "?"
	if n := cl.NodeOf(clientID); n != nil {
		now = n.Name
	}
	t.Logf("killed %s (rivermon's broker, leader of $MQTT_msgs; $MQTT_sess led by %s) after %d messages; rivermon reconnected to %s %.2f s later",
		leader.Name, sessLeader, atKill, now, failover.Seconds())
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	const total = messages * perMessage
	testenv.Eventually(t, 60*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", fmt.Sprintf("station = '%s'", station)) == total
	}, "InfluxDB does not hold the %d samples: %d", total, in.Count(t, "reading", "level_m", ""))
	t.Logf("all %d samples stored %.2f s after the kill", total, time.Since(killed).Seconds())

	ss, err := in.Query("rivermon", fmt.Sprintf(`SELECT level_m FROM reading WHERE station = '%s'`, station))
	if err != nil || len(ss) != 1 {
		t.Fatalf("query: %v %v", ss, err)
	}
	if len(ss[0].Values) != total {
		t.Fatalf("%d points, want %d", len(ss[0].Values), total)
	}
	for _, row := range ss[0].Values {
		ns, _ := strconv.ParseInt(string(row[0].(json.Number)), 10, 64)
		i := int(time.Unix(0, ns).Sub(base) / time.Second)
		got, _ := row[1].(json.Number).Float64()
		if i < 0 || i >= total || got != level(i) {
			t.Errorf("sample %d at %s: level_m %v, want %v", i, time.Unix(0, ns).UTC(), got, level(i))
		}
	}
}

// shippedNATSConf gives node i the shipped configs/nats/node-<i+1>.conf
// with its listeners on the test's loopback ports, the routes to the other
// nodes' and the JetStream store in the node's folder.
func shippedNATSConf(t *testing.T) func(c *testenv.NATSCluster, i int) string {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return func(c *testenv.NATSCluster, i int) string {
		name := fmt.Sprintf("node-%d.conf", i+1)
		b, err := os.ReadFile(filepath.Join(root, "configs", "nats", name))
		if err != nil {
			t.Fatal(err)
		}
		n := c.Nodes[i]
		edits := [][2]string{
			{"server_name: nats-" + strconv.Itoa(i+1) + "\n", "server_name: " + n.Name + "\n"},
			{"listen: 127.0.0.1:4222\n", fmt.Sprintf("listen: 127.0.0.1:%d\n", n.ClientPort)},
			{"http: 127.0.0.1:8222\n", fmt.Sprintf("http: 127.0.0.1:%d\n", n.HTTPPort)},
			{"store_dir: /var/lib/nats-server\n", fmt.Sprintf("store_dir: %q\n", filepath.Join(n.Dir, "jetstream"))},
			{"listen: 0.0.0.0:6222\n", fmt.Sprintf("listen: 127.0.0.1:%d\n", n.ClusterPort)},
			{"listen: 0.0.0.0:1883\n", fmt.Sprintf("listen: 127.0.0.1:%d\n", n.MQTTPort)},
		}
		for j, m := range c.Nodes {
			edits = append(edits, [2]string{fmt.Sprintf("nats-route://nats-%d:6222\n", j+1), fmt.Sprintf("nats-route://127.0.0.1:%d\n", m.ClusterPort)})
		}
		text := string(b)
		for _, e := range edits {
			if strings.Count(text, e[0]) != 1 {
				t.Fatalf("configs/nats/%s: %q is not in it once", name, e[0])
			}
			text = strings.Replace(text, e[0], e[1], 1)
		}
		return text
	}
}
