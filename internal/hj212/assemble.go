package hj212

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Split packets (HJ 212-2017 Table 3: Flag bit D, PNUM pieces in all, PNO
// this one). How senders split, as found in public implementations:
//
//   - srdgame/lua-HJ212 (hj212/params.lua, hj212/packet/data.lua) fills
//     each piece with whole items up to 1024 characters and starts every
//     piece with the DataTime again; when an answer is wanted, each piece
//     gets its own QN (the first's plus PNO milliseconds). Its receiver
//     appends the pieces' data areas in PNO order.
//   - caoyiliang/HJ212 (HJ212/Request/UploadStatisticsDataReq.cs) sends
//     each piece as its own request, "DataTime=…;" and whole items, Flag
//     A|D, waiting for each piece's own answer.
//   - 1249993110/IceCoffee.HJ212 (IceCoffee.HJ212/Models/DataSegment.cs)
//     receives pieces in order and joins their data areas, dropping the
//     "DataTime=YYYYMMDDhhmmss" that every piece after the first repeats.
//
// So a piece usually stands on its own, and its QN cannot be relied on to
// find the others. Assembler is for the pieces that do not: a data area
// cut at arbitrary places, whose later pieces carry no DataTime.

// Pieces reports whether p is one piece of a split packet: Flag bit D set
// and a PNUM of 2 or more. pnum is how many pieces the packet has, pno
// which one p is (1 to pnum). A packet with bit D but no PNUM is whole, as
// lua-HJ212 reads it.
func (p *Packet) Pieces() (pnum, pno int, split bool) {
	if p.Flag&2 == 0 || p.PNUM == "" {
		return 0, 0, false
	}
	pnum, err1 := strconv.Atoi(p.PNUM)
	pno, err2 := strconv.Atoi(p.PNO)
	if err1 != nil || err2 != nil || pnum < 2 || pno < 1 || pno > pnum {
		return 0, 0, false
	}
	return pnum, pno, true
}

// checkPieces checks PNUM and PNO as ParseSegment reads them: both or
// neither, decimal numbers of at most 4 digits (Table 3: "PNUM=" and 4
// characters), PNO not beyond PNUM.
func checkPieces(p *Packet) *Error {
	if p.PNUM == "" && p.PNO == "" {
		return nil
	}
	num := func(s string) (int, bool) {
		if len(s) < 1 || len(s) > 4 {
			return 0, false
		}
		for i := 0; i < len(s); i++ {
			if !isDigit(s[i]) {
				return 0, false
			}
		}
		n, _ := strconv.Atoi(s)
		return n, n > 0
	}
	pnum, ok1 := num(p.PNUM)
	pno, ok2 := num(p.PNO)
	if !ok1 || !ok2 || pno > pnum {
		return &Error{ReasonBadSegment, fmt.Sprintf("PNUM %q and PNO %q: want piece PNO of PNUM, numbers from 1", p.PNUM, p.PNO)}
	}
	return nil
}

// Key identifies the pieces of one split packet: their sender's MN and
// their QN.
type Key struct{ MN, QN string }

// Piece is one piece of a split packet, with what its receiver keeps of
// it in Meta.
type Piece[T any] struct {
	Pkt       *Packet
	PNUM, PNO int       // from Pkt.Pieces
	Raw       []byte    // the frame
	At        time.Time // when it came
	Meta      T
}

// Incomplete is pieces an Assembler gave up, with why.
type Incomplete[T any] struct {
	Key    Key
	PNUM   int
	Pieces []Piece[T] // in PNO order
	Why    string
}

// AssemblerLimits bound what an Assembler holds.
type AssemblerLimits struct {
	// MaxPieces is the most pieces held in all, and so the largest PNUM
	// joined.
	MaxPieces int
	// MaxBytes is the most bytes of frames held in all.
	MaxBytes int
	// MaxAge is how long after its first piece came a packet is waited
	// for.
	MaxAge time.Duration
}

// Assembler holds the pieces of split packets, keyed by MN and QN, until
// all the pieces of a packet are in, in any order. It is bounded: when a
// piece would take it beyond MaxPieces or MaxBytes, the packets whose first
// piece was added first are given up; Expire gives up those older than
// MaxAge. It reads no clock and is not safe for concurrent use.
type Assembler[T any] struct {
	lim    AssemblerLimits
	groups map[Key]*pieceGroup[T]
	order  []Key // in the order their first piece was added
	pieces int
	bytes  int
}

type pieceGroup[T any] struct {
	pnum   int
	first  time.Time
	pieces []Piece[T]
	bytes  int
}

// NewAssembler returns an empty Assembler.
func NewAssembler[T any](lim AssemblerLimits) *Assembler[T] {
	return &Assembler[T]{lim: lim, groups: map[Key]*pieceGroup[T]{}}
}

// Held returns how many pieces and bytes a holds.
func (a *Assembler[T]) Held() (pieces, bytes int) { return a.pieces, a.bytes }

// Add takes piece p. When p completes its packet, complete holds the
// packet's pieces in PNO order (Join joins them) and the packet is no
// longer held. gaveUp holds what could not be kept: p itself when its
// packet cannot be joined (PNUM beyond MaxPieces or at odds with the
// packet's other pieces) or when its PNO is already held (the first one
// is kept), and the packets given up to make room for p.
func (a *Assembler[T]) Add(p Piece[T]) (complete []Piece[T], gaveUp []Incomplete[T]) {
	k := Key{MN: p.Pkt.MN, QN: p.Pkt.QN}
	alone := func(why string) []Incomplete[T] {
		return []Incomplete[T]{{Key: k, PNUM: p.PNUM, Pieces: []Piece[T]{p}, Why: why}}
	}
	if p.PNUM > a.lim.MaxPieces || len(p.Raw) > a.lim.MaxBytes {
		return nil, alone(fmt.Sprintf("a packet of %d pieces, one of %d bytes, is beyond what is held (%d pieces, %d bytes)",
			p.PNUM, len(p.Raw), a.lim.MaxPieces, a.lim.MaxBytes))
	}
	if g := a.groups[k]; g != nil {
		if g.pnum != p.PNUM {
			return nil, alone(fmt.Sprintf("PNUM %d; the packet's other pieces say %d", p.PNUM, g.pnum))
		}
		if slices.ContainsFunc(g.pieces, func(q Piece[T]) bool { return q.PNO == p.PNO }) {
			return nil, alone(fmt.Sprintf("PNO %d again; the first is kept", p.PNO))
		}
	}
	for a.pieces+1 > a.lim.MaxPieces || a.bytes+len(p.Raw) > a.lim.MaxBytes {
		gaveUp = append(gaveUp, a.remove(a.order[0], fmt.Sprintf("more than %d pieces or %d bytes held", a.lim.MaxPieces, a.lim.MaxBytes)))
	}
	g := a.groups[k]
	if g == nil {
		g = &pieceGroup[T]{pnum: p.PNUM, first: p.At}
		a.groups[k] = g
		a.order = append(a.order, k)
	}
	g.pieces = append(g.pieces, p)
	g.bytes += len(p.Raw)
	a.pieces++
	a.bytes += len(p.Raw)
	if len(g.pieces) < g.pnum {
		return nil, gaveUp
	}
	done := a.remove(k, "")
	return done.Pieces, gaveUp
}

// Expire gives up the packets whose first piece came more than MaxAge
// before now, in the order they began.
func (a *Assembler[T]) Expire(now time.Time) []Incomplete[T] {
	var out []Incomplete[T]
	for _, k := range slices.Clone(a.order) {
		if now.Sub(a.groups[k].first) > a.lim.MaxAge {
			out = append(out, a.remove(k, fmt.Sprintf("not complete %s after its first piece", a.lim.MaxAge)))
		}
	}
	return out
}

// GiveUpAll returns every packet held, each given up for why, and holds
// nothing more.
func (a *Assembler[T]) GiveUpAll(why string) []Incomplete[T] {
	var out []Incomplete[T]
	for _, k := range slices.Clone(a.order) {
		out = append(out, a.remove(k, why))
	}
	return out
}

// remove takes packet k out of a.
func (a *Assembler[T]) remove(k Key, why string) Incomplete[T] {
	g := a.groups[k]
	delete(a.groups, k)
	a.order = slices.DeleteFunc(a.order, func(o Key) bool { return o == k })
	a.pieces -= len(g.pieces)
	a.bytes -= g.bytes
	slices.SortFunc(g.pieces, func(x, y Piece[T]) int { return x.PNO - y.PNO })
	return Incomplete[T]{Key: k, PNUM: g.pnum, Pieces: g.pieces, Why: why}
}

// Join returns the data area of a split packet from its pieces in PNO
// order: end to end, as a data area cut at arbitrary places is made whole
// again, except that a piece repeating the first piece's DataTime at its
// start is joined without it, as IceCoffee.HJ212 joins pieces.
func Join[T any](pieces []Piece[T]) string {
	var b strings.Builder
	var lead string // "DataTime=…" of the first piece
	for i, p := range pieces {
		cp := p.Pkt.CP
		if i == 0 {
			if t, _, _ := strings.Cut(cp, ";"); strings.HasPrefix(t, "DataTime=") {
				lead = t
			}
		} else if rest, ok := strings.CutPrefix(cp, lead); ok && lead != "" && (rest == "" || rest[0] == ';') {
			cp = rest
		}
		b.WriteString(cp)
	}
	return b.String()
}
