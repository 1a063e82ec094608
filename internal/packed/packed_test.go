package packed

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// intsModel runs ops on an Ints and on a plain slice side by side and
// fails at the first number that differs. Each op is a byte of kind and a
// number.
type intsModel struct {
	t    *testing.T
	c    Ints
	want []int64
}

func (m *intsModel) check(op string) {
	m.t.Helper()
	if m.c.Len() != len(m.want) {
		m.t.Fatalf("after %s: %d numbers, want %d", op, m.c.Len(), len(m.want))
	}
	for i, x := range m.want {
		if got := m.c.At(i); got != x {
			m.t.Fatalf("after %s: number %d is %d, want %d (width %d, base %d, unit %d)", op, i, got, x, m.c.w, m.c.base, m.c.unit)
		}
	}
}

func (m *intsModel) insert(i int, x int64) {
	m.c.Insert(i, x)
	m.want = append(m.want[:i], append([]int64{x}, m.want[i:]...)...)
	m.check("insert")
}

func (m *intsModel) append(x int64) {
	m.c.Append(x)
	m.want = append(m.want, x)
	m.check("append")
}

func (m *intsModel) set(i int, x int64) {
	m.c.Set(i, x)
	m.want[i] = x
	m.check("set")
}

func (m *intsModel) drop(k int) {
	m.c.DropFront(k)
	m.want = append(m.want[:0], m.want[k:]...)
	m.check("drop")
}

// number draws the kind of numbers a column sees: times on a minute grid,
// now and then a second, a millisecond or a nanosecond off it, a time of
// another century, and the extremes of int64.
func number(r *rand.Rand, last int64) int64 {
	switch r.IntN(20) {
	case 0:
		return last + int64(r.IntN(1000))*int64(time.Millisecond)
	case 1:
		return last + int64(r.IntN(1000))
	case 2:
		return time.Date(1700+r.IntN(600), 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	case 3:
		return [...]int64{math.MinInt64, math.MaxInt64, 0, -1, 1}[r.IntN(5)]
	case 4:
		return last + int64(r.IntN(100))*int64(time.Second)
	}
	return last + int64(r.IntN(3)-1)*int64(time.Minute)
}

// jitter is how far a station's time is off its schedule: whole seconds,
// milliseconds, now and then more.
func jitter(r *rand.Rand) int64 {
	switch r.IntN(40) {
	case 0:
		return int64(r.IntN(1000)) * int64(time.Millisecond)
	case 1:
		return int64(r.IntN(60)-30) * int64(time.Second)
	case 2:
		return int64(r.IntN(1000))
	}
	return int64(r.IntN(11)-5) * int64(time.Second)
}

func TestIntsAsASlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).UnixNano()
	for trial := range 3000 {
		m := &intsModel{t: t}
		m.c.SetHint(r.IntN(50))
		if trial%2 == 0 {
			m.c.SetStep([...]int64{int64(time.Minute), 1, 2, 1 << 62}[r.IntN(4)])
		}
		last, grid := start, start
		for range r.IntN(200) {
			switch n := len(m.want); {
			case n > 0 && r.IntN(8) == 0:
				m.drop(r.IntN(n + 1))
			case n > 0 && r.IntN(6) == 0:
				m.set(r.IntN(n), number(r, last))
			case trial%3 == 0: // times in order, mostly, some repeated
				if r.IntN(4) > 0 {
					last += int64(time.Minute)
				}
				if r.IntN(10) == 0 {
					last = number(r, last)
				}
				m.append(last)
			case trial%3 == 1 && r.IntN(8) > 0: // times jittered around the minute
				if grid += int64(time.Minute); r.IntN(30) == 0 {
					grid += int64(r.IntN(200)) * int64(time.Minute) // a gap
				}
				last = grid + jitter(r)
				m.append(last)
			default:
				last = number(r, last)
				m.insert(r.IntN(n+1), last)
			}
		}
	}
}

// TestIntsPackMinutes: the times of a station on its schedule, a minute
// apart, take nothing per time, also after weeks of values have come and
// gone, and with gaps among them 16 bytes a gap; times off the minute take
// 4 bytes each (seconds over 72 hours), until they are dropped.
func TestIntsPackMinutes(t *testing.T) {
	var c Ints
	c.SetHint(4400)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	at := func(i int) int64 { return start.Add(time.Duration(i) * time.Minute).UnixNano() }
	for i := range 60 * 24 * 60 {
		c.Append(at(i))
		if c.Len() > 4320 {
			c.DropFront(c.Len() - 4320)
		}
	}
	if c.w != 0 || c.Bytes() != 0 {
		t.Errorf("60 days of minutes, 4,320 held: width %d, %d bytes", c.w, c.Bytes())
	}
	if got, want := c.At(4319), at(60*24*60-1); got != want {
		t.Errorf("last time %d, want %d", got, want)
	}
	// Hours without values.
	next := 60 * 24 * 60
	for gap := range 3 {
		next += 60 * (gap + 1)
		for range 100 {
			c.Append(at(next))
			c.DropFront(1)
			next++
		}
	}
	if c.w != 0 || c.Bytes() > 4*16 {
		t.Errorf("with three gaps: width %d, %d bytes", c.w, c.Bytes())
	}
	// A second after the minute, now and then.
	for i := range 1000 {
		x := at(next)
		if i%7 == 0 {
			x += int64(time.Second)
		}
		c.Append(x)
		c.DropFront(1)
		next++
	}
	// 72 hours of seconds do not fit in 16 bits.
	if c.w != 32 || c.unit != int64(time.Second) || c.Bytes() > 4*4400*3/2 {
		t.Errorf("times off the minute: width %d, unit %d, %d bytes", c.w, c.unit, c.Bytes())
	}
	for range 5000 {
		c.Append(at(next))
		c.DropFront(1)
		next++
	}
	if c.w != 0 || c.Bytes() > 4*16 {
		t.Errorf("on the minute again: width %d, %d bytes", c.w, c.Bytes())
	}
	if got, want := c.At(4319), at(next-1); got != want {
		t.Errorf("last time %d, want %d", got, want)
	}
}

// TestIntsPackJitter: times of a station a minute apart, each a few
// seconds off the minute (HJ 212 and loggers' JSON carry whole seconds),
// take 4 bits each in a column that knows the step, also with gaps; a
// second off in milliseconds, 16 bits; on the minute again, nothing.
func TestIntsPackJitter(t *testing.T) {
	const held = 4320 // 72 hours
	var c Ints
	c.SetHint(held + held/3)
	c.SetStep(int64(time.Minute))
	r := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	next := 0
	feed := func(k int, off func() time.Duration) {
		for range k {
			c.Append(start.Add(time.Duration(next)*time.Minute + off()).UnixNano())
			if next++; next%7000 == 0 {
				next += 30 // half an hour without values
			}
			if c.Len() > held+held/3 {
				c.DropFront(c.Len() - held)
			}
		}
	}
	seconds := func() time.Duration { return time.Duration(r.IntN(11)-5) * time.Second }
	feed(30*24*60, seconds)
	if c.w != wGrid || c.jbits != 4 || c.Bytes() > (held+held/3)/2+8+16*4 {
		t.Errorf("30 days within 5 s of the minute: width %d, %d bits, %d bytes", c.w, c.jbits, c.Bytes())
	}
	feed(10*24*60, func() time.Duration { return time.Duration(r.IntN(1000)) * time.Millisecond })
	if c.w != wGrid || c.jbits != 16 || c.Bytes() > 2*(held+held/3)+8+16*4 {
		t.Errorf("10 days up to a second after the minute in ms: width %d, %d bits, %d bytes", c.w, c.jbits, c.Bytes())
	}
	feed(5*24*60, func() time.Duration { return 0 })
	if c.w != 0 || c.Bytes() > 16*4 {
		t.Errorf("on the minute again: width %d, %d bytes", c.w, c.Bytes())
	}
	feed(24*60, seconds)
	if c.w != wGrid || c.jbits != 4 {
		t.Errorf("a day within 5 s of the minute again: width %d, %d bits, %d bytes", c.w, c.jbits, c.Bytes())
	}
	if got, want := c.At(c.Len()-1), start.Add(time.Duration(next-1)*time.Minute).UnixNano(); got < want-5e9 || got > want+5e9 {
		t.Errorf("last time %v, want within 5 s of %v", time.Unix(0, got), time.Unix(0, want))
	}
}

// TestIntsPackAgain: a column widened by a number that did not fit packs
// itself again once that number is dropped.
func TestIntsPackAgain(t *testing.T) {
	var c Ints
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).UnixNano()
	c.Append(time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	for i := range 100 {
		c.Append(start + int64(i)*int64(time.Minute))
	}
	if c.w != 64 {
		t.Fatalf("width %d with a time of 1700", c.w)
	}
	c.DropFront(1)
	if c.w != 0 || c.unit != int64(time.Minute) {
		t.Errorf("without the time of 1700: width %d, unit %d", c.w, c.unit)
	}
	// Nanoseconds off the minute: more runs than numbers stored take.
	for i := range 100 {
		c.Append(start + int64(100+i)*int64(time.Minute) + int64(i%3))
	}
	if c.w != 64 {
		t.Errorf("times nanoseconds off the minute: width %d", c.w)
	}
	for i := range 100 {
		c.Append(start + int64(200+i)*int64(time.Minute))
	}
	c.DropFront(198) // one time two nanoseconds off stays: two runs
	if c.w != 0 || len(c.runs) != 1 {
		t.Errorf("one time a nanosecond off, minutes after it: width %d, %d runs before the last", c.w, len(c.runs))
	}
}

// FuzzInts: any sequence of inserts, sets and drops reads back as a slice
// does, in a column without a step and in columns of a step of a minute
// and of 4 (numbers near it: a grid).
func FuzzInts(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x3c\x05\x01"))
	f.Add([]byte("\x80\x00\x00\x00\x00\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("\x30\x00\x00\x00\x00\x00\x00\x00\x01\x30\x00\x00\x00\x00\x00\x00\x00\x02" +
		"\x30\x00\x00\x00\x00\x00\x00\x00\x07\x30\x00\x00\x00\x00\x00\x00\x00\x05"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		for _, step := range []int64{0, int64(time.Minute), 4} {
			fuzzInts(t, step, ops)
		}
	})
}

// fuzzInts runs ops, 9 bytes each (a kind, a number), on a column of the
// given step and on a slice.
func fuzzInts(t *testing.T, step int64, ops []byte) {
	m := &intsModel{t: t}
	m.c.SetStep(step)
	for len(ops) >= 9 {
		op, x := ops[0], int64(binary.BigEndian.Uint64(ops[1:9]))
		ops = ops[9:]
		n := len(m.want)
		switch {
		case op < 40:
			m.append(x)
		case op < 80 && n > 0:
			m.append(m.want[n-1] + step + x%max(step/8, 4))
		case op < 160:
			m.insert(int(op)%(n+1), x)
		case op < 220 && n > 0:
			m.set(int(op)%n, x)
		case n > 0:
			m.drop(int(op) % (n + 1))
		}
	}
}

type floatsModel struct {
	t    *testing.T
	c    Floats
	want []float64
}

func (m *floatsModel) check(op string) {
	m.t.Helper()
	if m.c.Len() != len(m.want) {
		m.t.Fatalf("after %s: %d values, want %d", op, m.c.Len(), len(m.want))
	}
	for i, v := range m.want {
		if got := m.c.At(i); !same(got, v) {
			m.t.Fatalf("after %s: value %d is %v (%x), want %v (%x); exponent %d, flat %v", op, i, got, math.Float64bits(got), v, math.Float64bits(v), m.c.k, m.c.flat)
		}
	}
}

// same: bit for bit, but for the sign of a zero.
func same(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || a == 0 && b == 0
}

func (m *floatsModel) insert(i int, v float64) {
	m.c.Insert(i, v)
	m.want = append(m.want[:i], append([]float64{v}, m.want[i:]...)...)
	m.check("insert")
}

func (m *floatsModel) set(i int, v float64) {
	m.c.Set(i, v)
	m.want[i] = v
	m.check("set")
}

func (m *floatsModel) drop(k int) {
	m.c.DropFront(k)
	m.want = append(m.want[:0], m.want[k:]...)
	m.check("drop")
}

// sum is 0.1 + 0.2 in float64, 0.30000000000000004: no short decimal (the
// constant expression would be 0.3).
var sum = 0.30000000000000004

// value draws what readings are: decimals of 0 to 6 places as a decoder
// reads them, now and then one of many places, one that is no short
// decimal (0.1 + 0.2), a zero of either sign, an extreme.
func value(r *rand.Rand) float64 {
	switch r.IntN(20) {
	case 0:
		return sum
	case 1:
		return [...]float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), math.MaxFloat64,
			math.SmallestNonzeroFloat64, 1e300, -1e-300, 9007199254740993, 1 << 60}[r.IntN(11)]
	case 2:
		return r.NormFloat64() * 1000
	case 3:
		return float64(r.Int64N(1<<53)) / 1e15
	}
	k := r.IntN(7)
	return float64(r.IntN(200000)-1000) / math.Pow(10, float64(k))
}

func TestFloatsAsASlice(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		m := &floatsModel{t: t}
		m.c.SetHint(r.IntN(50))
		for range r.IntN(200) {
			switch n := len(m.want); {
			case n > 0 && r.IntN(8) == 0:
				m.drop(r.IntN(n + 1))
			case n > 0 && r.IntN(6) == 0:
				m.set(r.IntN(n), value(r))
			default:
				m.insert(r.IntN(n+1), value(r))
			}
		}
	}
}

// TestFloatsPackReadings: a stage in millimetres and a temperature in
// hundredths of a degree take 2 bytes a value; a value that is no short
// decimal makes the column hold float64s until it is dropped.
func TestFloatsPackReadings(t *testing.T) {
	var level, temp Floats
	r := rand.New(rand.NewPCG(5, 5))
	for range 5000 {
		level.Append(float64(1000+r.IntN(4000)) / 1000) // 1.000–4.999 m
		temp.Append(float64(-50+r.IntN(2000)) / 100)    // −0.50–19.49 °C
	}
	for _, c := range []*Floats{&level, &temp} {
		if c.flat || c.m.w != 16 {
			t.Errorf("flat %v, width %d", c.flat, c.m.w)
		}
	}
	level.Append(sum)
	level.Append(1.234)
	if !level.flat {
		t.Fatalf("%v kept as a decimal, exponent %d", sum, level.k)
	}
	level.DropFront(1)
	if !level.flat {
		t.Fatalf("packed again while %v is held", sum)
	}
	level.DropFront(level.Len() - 1)
	if level.flat || level.At(0) != 1.234 {
		t.Errorf("after %v went: flat %v, %v", sum, level.flat, level.At(0))
	}
}

// FuzzFloats: any sequence of inserts, sets and drops of any float64s
// reads back as a slice does (but for the sign of a zero).
func FuzzFloats(f *testing.F) {
	f.Add([]byte("\x00\x3f\xf3\xc0\x83\x12\x6e\x97\x8d\x01\x3f\xb9\x99\x99\x99\x99\x99\x9a"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		m := &floatsModel{t: t}
		for len(ops) >= 9 {
			op := ops[0]
			v := math.Float64frombits(binary.BigEndian.Uint64(ops[1:9]))
			if op&1 == 1 {
				// Mostly short decimals: the 8 bytes as a mantissa and
				// an exponent.
				v = float64(int32(binary.BigEndian.Uint32(ops[1:5]))) / math.Pow(10, float64(ops[5]%10))
			}
			ops = ops[9:]
			n := len(m.want)
			switch {
			case op < 160:
				m.insert(int(op)%(n+1), v)
			case op < 220 && n > 0:
				m.set(int(op)%n, v)
			case n > 0:
				m.drop(int(op) % (n + 1))
			}
		}
	})
}
