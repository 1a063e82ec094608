package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NATSCluster is a running cluster of NATS servers with JetStream and MQTT,
// each node a child process with its own ports and store.
type NATSCluster struct {
	Nodes []*NATSNode
	// Started is when the first node was launched; LeaderAt is when every
	// node first agreed on a JetStream meta leader.
	Started, LeaderAt time.Time
}

// NATSNode is one server of a NATSCluster. Its Process listens on MQTTPort.
type NATSNode struct {
	*Process
	Name        string // server_name: nats-1, nats-2, …
	ClientPort  int    // NATS clients
	ClusterPort int    // routes between the nodes
	MQTTPort    int
	HTTPPort    int    // monitoring: /jsz, /connz
	Dir         string // the node's folder: its config, log and JetStream store
	MQTTURL     string
}

// NATSClusterOptions adjust the cluster.
type NATSClusterOptions struct {
	// Nodes is the cluster size; 3 when zero.
	Nodes int
	// Conf, when set, writes node i's configuration instead of the default
	// one: the nodes' names, ports and folders are set by then, and the
	// store goes under Dir.
	Conf func(c *NATSCluster, i int) string
}

// StartNATSCluster starts a NATS cluster on free loopback ports, each node
// with JetStream (its store in a temporary folder) and an MQTT listener
// whose streams have a replica on every node (mqtt.stream_replicas), and
// waits until the nodes have agreed on a JetStream meta leader. Without
// stream_replicas NATS picks the MQTT streams' replicas from the cluster
// size it sees when the first MQTT client connects, and one lost node may
// then stall them. A missing nats-server skips the test locally and fails
// it under CI=true.
func StartNATSCluster(t testing.TB, o NATSClusterOptions) *NATSCluster {
	t.Helper()
	bin := FindBinary(t, "nats-server", "RIVERMON_NATS_SERVER")
	n := o.Nodes
	if n == 0 {
		n = 3
	}
	c := &NATSCluster{}
	for i := range n {
		node := &NATSNode{Name: fmt.Sprintf("nats-%d", i+1), ClientPort: FreePort(t), ClusterPort: FreePort(t),
			MQTTPort: FreePort(t), HTTPPort: FreePort(t), Dir: t.TempDir()}
		node.MQTTURL = fmt.Sprintf("tcp://127.0.0.1:%d", node.MQTTPort)
		c.Nodes = append(c.Nodes, node)
	}
	conf := o.Conf
	if conf == nil {
		conf = defaultNATSConf
	}
	for i, node := range c.Nodes {
		path := filepath.Join(node.Dir, "nats.conf")
		writeFile(t, path, conf(c, i))
		node.Process = newProcess(t, node.Name, bin, node.MQTTPort, filepath.Join(node.Dir, "nats.log"), "-c", path)
	}
	// All are launched before any is waited for: a node may hold its
	// listeners back until it has found the others.
	c.Started = time.Now()
	for _, node := range c.Nodes {
		node.launch()
	}
	for _, node := range c.Nodes {
		node.awaitPort()
	}
	c.LeaderAt = c.AwaitMetaLeader(t, 60*time.Second)
	return c
}

// Routes are the nodes' cluster URLs, for a configuration's routes list.
func (c *NATSCluster) Routes() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", n.ClusterPort)
	}
	return out
}

// MQTTURLs are the nodes' MQTT URLs, in node order.
func (c *NATSCluster) MQTTURLs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.MQTTURL
	}
	return out
}

func defaultNATSConf(c *NATSCluster, i int) string {
	n := c.Nodes[i]
	return fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
}
cluster {
  name: rivermon-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
mqtt {
  listen: 127.0.0.1:%d
  stream_replicas: %d
}
`, n.Name, n.ClientPort, n.HTTPPort, filepath.Join(n.Dir, "jetstream"), n.ClusterPort,
		strings.Join(c.Routes(), ", "), n.MQTTPort, len(c.Nodes))
}

// running reports whether the node's process is up.
func (n *NATSNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// MetaLeader is the JetStream meta leader the node knows of and the size of
// the meta group it sees ("" and 0 when it cannot tell).
func (n *NATSNode) MetaLeader() (leader string, size int) {
	var jsz struct {
		Meta *struct {
			Leader      string `json:"leader"`
			ClusterSize int    `json:"cluster_size"`
		} `json:"meta_cluster"`
	}
	if n.getJSON("/jsz", &jsz) != nil || jsz.Meta == nil {
		return "", 0
	}
	return jsz.Meta.Leader, jsz.Meta.ClusterSize
}

// AwaitMetaLeader waits until every running node names the same JetStream
// meta leader and sees a meta group of the whole cluster, and returns when
// that was seen first; it fails the test after timeout.
func (c *NATSCluster) AwaitMetaLeader(t testing.TB, timeout time.Duration) time.Time {
	t.Helper()
	var at time.Time
	Eventually(t, timeout, func() bool {
		agreed := ""
		for _, n := range c.Nodes {
			if !n.running() {
				continue
			}
			leader, size := n.MetaLeader()
			if leader == "" || size != len(c.Nodes) || (agreed != "" && leader != agreed) {
				return false
			}
			agreed = leader
		}
		at = time.Now()
		return agreed != ""
	}, "the NATS nodes did not agree on a JetStream meta leader")
	return at
}

// StreamLeader is the node leading the JetStream stream of the global
// account ($G, where MQTT clients land without accounts), as the running
// nodes see it; "" when none can tell.
func (c *NATSCluster) StreamLeader(stream string) string {
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		var jsz struct {
			Accounts []struct {
				Name    string `json:"name"`
				Streams []struct {
					Name    string `json:"name"`
					Cluster *struct {
						Leader string `json:"leader"`
					} `json:"cluster"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		if n.getJSON("/jsz?accounts=true&streams=true", &jsz) != nil {
			continue
		}
		for _, a := range jsz.Accounts {
			for _, s := range a.Streams {
				if s.Name == stream && s.Cluster != nil && s.Cluster.Leader != "" {
					return s.Cluster.Leader
				}
			}
		}
	}
	return ""
}

// Node returns the node named name, or nil.
func (c *NATSCluster) Node(name string) *NATSNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// HasMQTTClient reports whether an MQTT client with this client id is
// connected to the node.
func (n *NATSNode) HasMQTTClient(clientID string) bool {
	var connz struct {
		Connections []struct {
			MQTTClient string `json:"mqtt_client"`
		} `json:"connections"`
	}
	if !n.running() || n.getJSON("/connz?mqtt_client="+url.QueryEscape(clientID), &connz) != nil {
		return false
	}
	for _, c := range connz.Connections {
		if c.MQTTClient == clientID {
			return true
		}
	}
	return false
}

// NodeOf returns the running node an MQTT client with this client id is
// connected to, or nil.
func (c *NATSCluster) NodeOf(clientID string) *NATSNode {
	for _, n := range c.Nodes {
		if n.HasMQTTClient(clientID) {
			return n
		}
	}
	return nil
}

// monitorClient asks the nodes' monitoring endpoints. It keeps no idle
// connections: a goroutine left reading one would outlive the test.
var monitorClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (n *NATSNode) getJSON(path string, v any) error {
	resp, err := monitorClient.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.HTTPPort, path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
