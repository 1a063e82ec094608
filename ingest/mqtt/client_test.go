package mqtt

import "testing"

func TestBufferable(t *testing.T) {
	for brokers, want := range map[string]bool{
		"tcp://127.0.0.1:1883":  true,
		"ssl://broker:8883":     true,
		"mqtts://broker:8883":   true,
		"ws://broker:9001/mqtt": false,
		"wss://broker/mqtt":     false,
		"unix:///run/mqtt.sock": false,
	} {
		if got := bufferable([]string{brokers}); got != want {
			t.Errorf("bufferable(%s) = %v", brokers, got)
		}
	}
	if bufferable([]string{"tcp://a:1883", "ws://b:9001"}) || bufferable(nil) {
		t.Error("a websocket broker among others, or none, must keep paho's own connection")
	}
}
