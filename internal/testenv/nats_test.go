package testenv

import (
	"testing"
	"time"
)

// TestNATSClusterCarriesMQTTAcrossNodes: the nodes agree on a meta leader,
// and a QoS 1 message published on one node reaches a subscriber on
// another, which the cluster's monitoring finds.
func TestNATSClusterCarriesMQTTAcrossNodes(t *testing.T) {
	c := StartNATSCluster(t, NATSClusterOptions{})
	if c.LeaderAt.Before(c.Started) || len(c.MQTTURLs()) != 3 {
		t.Fatalf("leader at %v, started %v, %d MQTT URLs", c.LeaderAt, c.Started, len(c.MQTTURLs()))
	}
	sub, err := Dial(t, ClientOptions{URL: c.Nodes[0].MQTTURL, ID: "sub", Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	sub.Subscribe("a/+")
	pub, err := Dial(t, ClientOptions{URL: c.Nodes[2].MQTTURL, ID: "pub", Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	pub.Publish("a/b", []byte("across"))
	Eventually(t, 10*time.Second, func() bool { return len(sub.Received("a/+")) == 1 }, "the message did not cross the cluster")
	if n := c.NodeOf("sub"); n != c.Nodes[0] {
		t.Errorf("the subscriber is on %v, want %s", n, c.Nodes[0].Name)
	}
	if c.StreamLeader("$MQTT_msgs") == "" {
		t.Error("no leader of the MQTT messages stream")
	}
}
