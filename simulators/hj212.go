package simulators

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// hjLink sends a station's water-quality values as HJ 212-2017 packets.
type hjLink struct {
	mn        string
	pw        string // the PW its packets carry
	crc       string // hj212.CRCVariantHJ212 or hj212.CRCVariantModbus
	transport string
	addr      string
	conn      net.Conn
	r         *bufio.Reader
}

// defaultPW is the PW of a station whose registry entry sets none: the
// standard's examples and most analysers as delivered use it.
const defaultPW = "123456"

// newHJLink is the HJ 212 link of st: its MN, its hj212_pw (else
// defaultPW) and its hj212_crc, unless crc overrides it.
func newHJLink(st *registry.Station, crc, transport, addr string) *hjLink {
	h := &hjLink{mn: st.HJ212MN, pw: st.HJ212PW, crc: st.HJ212CRC, transport: transport, addr: addr}
	if h.pw == "" {
		h.pw = defaultPW
	}
	if crc != "" {
		h.crc = crc
	}
	return h
}

// packet splits the water-quality values off a sample into a real-time
// (2011) packet asking for an answer; the rest stays a native reading.
func (h *hjLink) packet(s reading.Sample) (reading.Sample, []byte) {
	var cp strings.Builder
	cp.WriteString("DataTime=" + s.Time.In(reading.Zone).Format("20060102150405"))
	rest := reading.Sample{Time: s.Time}
	n := 0
	for _, v := range s.Values {
		factor, ok := hj212.FactorOf(v.Code)
		if !ok {
			rest.Values = append(rest.Values, v)
			continue
		}
		cp.WriteString(";" + factor + "-Rtd=" + strconv.FormatFloat(v.Value, 'f', -1, 64) + "," + factor + "-Flag=N")
		n++
	}
	if n == 0 {
		return s, nil
	}
	qn := s.Time.In(reading.Zone).Format("20060102150405.000")
	p := hj212.Packet{QN: qn[:14] + qn[15:], ST: "21", CN: "2011",
		PW: h.pw, MN: h.mn, Flag: 5, CP: cp.String()}
	return rest, p.EncodeCRC(h.crc)
}

// send delivers a packet: over MQTT at QoS 1, or over TCP waiting for the
// 9014 answer, three tries of ten seconds as the standard's defaults.
func (h *hjLink) send(ctx context.Context, c paho.Client, topic string, packet []byte) error {
	if h.transport != "tcp" {
		return publish(ctx, c, topic, false, packet)
	}
	var last error
	for range 3 {
		err := h.sendTCP(ctx, packet)
		if err == nil {
			return nil
		}
		last = err
		h.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("hj212 %s: %w", h.addr, last)
}

func (h *hjLink) sendTCP(ctx context.Context, packet []byte) error {
	if h.conn == nil {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := d.DialContext(dctx, "tcp", h.addr)
		cancel()
		if err != nil {
			return err
		}
		h.conn, h.r = c, bufio.NewReader(c)
	}
	// A stop must not wait out the answer's ten seconds.
	conn := h.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	_ = h.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := h.conn.Write(packet); err != nil {
		return err
	}
	line, err := h.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	reply, perr := hj212.Decode(line)
	if perr != nil || reply.CN != "9014" {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

func (h *hjLink) close() {
	if h.conn != nil {
		h.conn.Close()
		h.conn, h.r = nil, nil
	}
}
