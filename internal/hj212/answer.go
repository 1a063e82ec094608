package hj212

import "strconv"

// Return codes of the request answer 9011 (QnRtn, HJ 212-2017 Table 6;
// domain.md §3.9).
const (
	QnRtnReady    = 1   // ready to execute
	QnRtnRejected = 2   // request rejected
	QnRtnBadPW    = 3   // PW error
	QnRtnBadMN    = 4   // MN error
	QnRtnBadST    = 5   // ST error
	QnRtnBadFlag  = 6   // Flag error
	QnRtnBadQN    = 7   // QN error
	QnRtnBadCN    = 8   // CN error
	QnRtnBadCRC   = 9   // CRC error
	QnRtnUnknown  = 100 // unknown error
)

// Return codes of the execution result 9012 (ExeRtn, HJ 212-2017 Table 7;
// domain.md §3.9).
const (
	ExeRtnSuccess      = 1   // executed
	ExeRtnFailed       = 2   // failed, reason unknown
	ExeRtnBadCondition = 3   // request condition error
	ExeRtnTimeout      = 4   // communication timeout
	ExeRtnBusy         = 5   // system busy
	ExeRtnFault        = 6   // system fault
	ExeRtnNoData       = 100 // no data
)

// RequestAnswer is the request answer (CN 9011) to p with return code
// qnRtn (QnRtn*): ST 91, Flag 4 (HJ 212-2017, no answer wanted), p's QN,
// PW and MN, framed with p's CRC variant.
func (p *Packet) RequestAnswer(qnRtn int) *Packet {
	return p.answer("9011", "QnRtn="+strconv.Itoa(qnRtn))
}

// ExecutionResult is the execution result (CN 9012) of p with return code
// exeRtn (ExeRtn*), addressed as RequestAnswer.
func (p *Packet) ExecutionResult(exeRtn int) *Packet {
	return p.answer("9012", "ExeRtn="+strconv.Itoa(exeRtn))
}

func (p *Packet) answer(cn, cp string) *Packet {
	return &Packet{QN: p.QN, ST: "91", CN: cn, PW: p.PW, MN: p.MN, Flag: 4, CP: cp, CRC: p.CRC}
}

// CNBootTime is the data logger's boot-time notification (2081, site to
// centre): rivermon takes it as a sign of life.
const CNBootTime = "2081"

// IsDataUpload reports whether cn uploads monitoring data: real-time
// (2011), minute (2051), hourly (2061) or daily (2031) data, which the
// centre acknowledges with 9014.
func IsDataUpload(cn string) bool {
	_, ok := ValueField(cn)
	return ok
}

// Verdict is what the centre made of a packet, as the QnRtn code of its
// request answer.
type Verdict int

// Verdicts.
const (
	Taken    Verdict = QnRtnReady    // stored, or held to be joined with its other pieces
	Rejected Verdict = QnRtnRejected // rejected, or a CN the centre does not take
	BadPW    Verdict = QnRtnBadPW    // not the station's PW
	BadMN    Verdict = QnRtnBadMN    // an MN of no station, or not the station's
)

// Answers returns the frames that answer p, encoded with p's CRC variant;
// none when p's Flag does not ask for an answer (bit A). A data upload
// (IsDataUpload) is acknowledged with 9014 whatever the verdict: 9014
// carries no return code, and the upload is in the spool either way, stored
// or dead-lettered; left unanswered, the logger would send it again only
// for it to be dead-lettered again. Any other packet (a command or a
// notification) gets the request answer 9011 with the verdict as QnRtn
// and, when it was taken, the execution result 9012 with ExeRtn 1.
func Answers(p *Packet, v Verdict) [][]byte {
	switch {
	case !p.AckRequested():
		return nil
	case IsDataUpload(p.CN):
		return [][]byte{p.Ack().Encode()}
	case v == Taken:
		return [][]byte{p.RequestAnswer(int(v)).Encode(), p.ExecutionResult(ExeRtnSuccess).Encode()}
	default:
		return [][]byte{p.RequestAnswer(int(v)).Encode()}
	}
}
