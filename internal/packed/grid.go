package packed

// A column of times of a station on its schedule is a few runs of one step
// (Ints, runs). Times jittered around the schedule are not: HJ 212's
// DataTime and loggers' JSON carry whole seconds, and a station's clock
// and transmission put each sample some seconds off the minute, so that no
// two steps are alike and each time took 4 bytes (32-bit offsets over 72
// hours). A grid keeps such a column as runs of the step the owner expects
// (SetStep), each number stored as its small deviation from its run:
// x = first + unit·(i − start) + junit·(jlo + g), g in jbits bits, packed
// into words. Times up to 5 s either side of the minute take 4 bits, up to
// a second off in milliseconds 16.

// wGrid is the width of a grid column (w); the deviations g live in d64,
// jbits each, the first in the low bits of the first word.
const wGrid = 1

// SetStep tells the column the distance its owner expects between
// consecutive numbers, a station's reporting interval: numbers near that
// progression are kept as small deviations from it. Without it (0) a
// column keeps no grid.
func (c *Ints) SetStep(step int64) { c.step = max(step, 0) }

// dev is the deviation of the i-th number of a grid column from its run,
// in units of junit.
func (c *Ints) dev(i int) int64 {
	bit := uint(i) * uint(c.jbits)
	return c.jlo + int64(uint64(c.d64[bit/64])>>(bit%64)&(1<<c.jbits-1))
}

// pushDev adds the stored deviation g (0 ≤ g < 2^jbits) of the number after
// the last of a grid column.
func (c *Ints) pushDev(g int64) {
	bit := uint(c.n) * uint(c.jbits)
	if w := int(bit / 64); w == len(c.d64) {
		if w == cap(c.d64) {
			grown := make([]int64, w, words(grow(c.n, c.hint), c.jbits))
			copy(grown, c.d64)
			c.d64 = grown
		}
		c.d64 = append(c.d64, 0)
	}
	c.d64[bit/64] |= g << (bit % 64)
}

// words is how many words n deviations of bits each take.
func words(n int, bits uint8) int { return (n*int(bits) + 63) / 64 }

// gridAppend appends x to a grid column: as a deviation from the last run,
// as a new run after a gap, or else by building the grid again with x. It
// reports false, changing nothing, when x leaves the column no grid.
func (c *Ints) gridAppend(x int64) bool {
	// Wrapping arithmetic: whatever delta is, p + delta is x.
	delta := x - (c.base + c.unit*int64(c.n-c.from))
	top := int64(1)<<c.jbits - 1
	if q := delta / c.junit; q*c.junit == delta && q-c.jlo >= 0 && q-c.jlo <= top {
		c.pushDev(q - c.jlo)
		c.n++
		return true
	}
	if half := c.unit / 2; (delta <= -half || delta >= half) && len(c.runs)+1 < maxRuns(c.n+1) && c.jlo <= 0 && -c.jlo <= top {
		// A gap: x starts a run of its own, on its own time.
		c.runs = append(c.runs, run{c.base, c.n})
		c.base, c.from = x, c.n
		c.pushDev(-c.jlo)
		c.n++
		return true
	}
	return c.regrid(x)
}

// regrid makes the column, with x after its numbers, a grid if they suit
// one, and reports whether they did (else it changes nothing).
func (c *Ints) regrid(x int64) bool {
	xs := make([]int64, c.n+1)
	for i := range c.n {
		xs[i] = c.At(i)
	}
	xs[c.n] = x
	return c.gridOf(xs)
}

// toGrid makes a column of 16, 32 or 64 bits a grid if its numbers suit
// one, and reports whether they did.
func (c *Ints) toGrid() bool {
	if c.step <= 1 || c.n < 3 {
		return false
	}
	xs := make([]int64, c.n)
	for i := range c.n {
		xs[i] = c.At(i)
	}
	return c.gridOf(xs)
}

// nearStep tells whether x, after the last number, is about a step on
// from it: half a step to one and a half.
func (c *Ints) nearStep(last, x int64) bool {
	d, ok := sub(x, last)
	return ok && c.step > 1 && d > c.step/2 && d < c.step+c.step/2
}

// gridOf makes the column a grid of xs and reports true, if the numbers
// are runs of the step, each a little off its run, and take fewer bytes so
// than as 16-bit numbers (or than 16 bits a number, spanning more than 16
// bits could hold). Otherwise it changes nothing.
func (c *Ints) gridOf(xs []int64) bool {
	s := c.step
	half := s / 2
	if s <= 1 || len(xs) < 3 {
		return false
	}
	// First pass: where runs start, the unit of the deviations, their range.
	var u, lo, hi int64
	first, from, runs := xs[0], 0, 0
	limit := maxRuns(len(xs)) - 1
	for i := 1; i < len(xs); i++ {
		d := xs[i] - (first + s*int64(i-from))
		if d <= -half || d >= half {
			if runs++; runs >= limit {
				return false
			}
			first, from = xs[i], i
			continue
		}
		u = gcd(u, abs(d))
		lo, hi = min(lo, d), max(hi, d)
	}
	if u == 0 {
		return false // runs without deviations: toRuns's
	}
	lo, hi = lo/u, hi/u
	var bits uint8
	for _, b := range []uint8{1, 2, 4, 8, 16} {
		if hi-lo < 1<<b {
			bits = b
			break
		}
	}
	if bits == 0 {
		return false
	}
	if bits == 16 {
		// As many bytes as 16-bit numbers: only if those would not do.
		span := xs[len(xs)-1] - xs[0]
		if span >= 0 && span/u < 1<<16 {
			return false
		}
	}
	// Room on both sides of the deviations seen.
	jlo := lo - (1<<bits-1-(hi-lo))/2
	c.w, c.unit, c.junit, c.jlo, c.jbits = wGrid, s, u, jlo, bits
	c.d16, c.d32 = nil, nil
	c.d64 = make([]int64, 0, words(max(len(xs)+1, c.hint), bits))
	c.runs, c.hit, c.n = c.runs[:0], 0, 0
	c.base, c.from = xs[0], 0
	c.pushDev(-jlo)
	c.n = 1
	for i := 1; i < len(xs); i++ {
		d := xs[i] - (c.base + s*int64(i-c.from))
		if d <= -half || d >= half {
			c.runs = append(c.runs, run{c.base, i})
			c.base, c.from, d = xs[i], i, 0
		}
		c.pushDev(d/u - jlo)
		c.n++
	}
	if cap(c.runs) > 2*len(c.runs)+4 {
		c.runs = append([]run(nil), c.runs...)
	}
	return true
}
