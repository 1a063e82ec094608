// Package packed keeps long columns of times and values in a few bytes
// each. rivermon holds every station's recent values for the streaming QC
// windows and the ecological-flow days: at 10,000 stations reporting every
// minute that is about a hundred million values, 16 to 24 bytes each as
// plain int64 and float64. Sample times lie on a grid (whole minutes or
// seconds) and readings are short decimals (millimetres, hundredths of a
// degree), so most columns fit in 2 bytes a number; a column falls back to
// wider storage, exactly, when one of its numbers does not fit, and packs
// itself again once that number is gone. A column of times of a station on
// its schedule, a step apart, stores nothing per time at all; one of times
// a few seconds off the schedule, 4 bits a time (grid.go).
package packed

import (
	"math"
	"math/bits"
	"slices"
	"sort"
)

// Ints is a column of int64 numbers, for one goroutine (At remembers where
// it looked last). While they are a progression, the i-th number
// base + unit·i (times a step apart, a value that does not change), it
// stores nothing per number; so too while they are a few runs of one step
// (times with gaps between), 16 bytes a run. Otherwise each number x is
// stored as d in x = base + unit·d, with unit a common divisor of the
// distances between the numbers and d in 16 bits while every d fits,
// otherwise 32 bits, otherwise as x itself (base 0, unit 1). Times one
// minute apart in Unix nanoseconds take 2 bytes each then, for up to 45
// days between the first and the last. Numbers a little off a progression
// of the step the owner expects (SetStep), times jittered around a
// station's schedule, are kept as a grid (grid.go): a few bits a number.
// The zero value is an empty column.
//
// x = base + unit·d holds in int64 arithmetic, which wraps: whatever
// overflows on the way, At gives back the number put in.
type Ints struct {
	base, unit int64 // unit 0: every number is base
	w          uint8 // width of d: 16, 32 or 64 (then base 0, unit 1); 0: runs; wGrid
	d16        []int16
	d32        []int32
	d64        []int64
	n          int
	hint       int // the length the owner expects the column to reach
	// Runs (w 0): the last starts at index from, its i-th number is
	// base + unit·(i − from); runs holds those before it.
	from int
	runs []run
	hit  int // the run at found last
	// Grid (w wGrid, grid.go): runs as above, of the unit step, and each
	// number junit·(jlo + g) off its run, g in jbits bits.
	step       int64 // the step the owner expects (SetStep); 0: no grid
	junit, jlo int64
	jbits      uint8
}

// run is a run of numbers first, first + unit, … up to the index end
// (from the end of the run before it, or 0).
type run struct {
	first int64
	end   int
}

// maxRuns is how many runs n numbers may be held in: below n/32, the runs
// take a quarter of the room 16-bit numbers would, or less.
func maxRuns(n int) int { return max(2, n/32) }

// Len is the number of numbers in the column.
func (c *Ints) Len() int { return c.n }

// Bytes is the memory the column's arrays take.
func (c *Ints) Bytes() int {
	return 2*cap(c.d16) + 4*cap(c.d32) + 8*cap(c.d64) + 16*cap(c.runs)
}

// SetHint tells the column how long it is expected to grow: growing, it
// doubles its array up to that length, then grows by a quarter. A column
// whose owner knows its length thereby holds no more room than it needs.
func (c *Ints) SetHint(n int) { c.hint = n }

// At is the i-th number.
func (c *Ints) At(i int) int64 {
	if c.w == 16 {
		return c.base + c.unit*int64(c.d16[i])
	}
	return c.at(i)
}

// at is the i-th number of a column of 32 or 64 bits, of runs or a grid
// (At is inlined where it is read; this is not).
func (c *Ints) at(i int) int64 {
	switch c.w {
	case 32:
		return c.base + c.unit*int64(c.d32[i])
	case 64:
		return c.d64[i]
	case wGrid:
		return c.run(i) + c.junit*c.dev(i)
	}
	return c.run(i)
}

// run is where the i-th number of a column of runs or a grid lies on its
// run.
func (c *Ints) run(i int) int64 {
	if i >= c.from && i < c.n {
		return c.base + c.unit*int64(i-c.from)
	}
	if i < 0 || i >= c.from {
		panic("packed: index out of range")
	}
	// Reads come near each other (a walk back, prune's look at the
	// oldest): the run found last first.
	k := c.hit
	if k >= len(c.runs) || c.runs[k].end <= i || k > 0 && c.runs[k-1].end > i {
		k = sort.Search(len(c.runs), func(k int) bool { return c.runs[k].end > i })
		c.hit = k
	}
	start := 0
	if k > 0 {
		start = c.runs[k-1].end
	}
	return c.runs[k].first + c.unit*int64(i-start)
}

// Set replaces the i-th number with x.
func (c *Ints) Set(i int, x int64) {
	if c.At(i) == x {
		return
	}
	c.materialize()
	d, ok := c.fast(x)
	if !ok {
		d = c.encode(x)
	}
	c.store(i, d)
}

// Insert puts x before the i-th number (at the end when i is Len).
func (c *Ints) Insert(i int, x int64) {
	if i < 0 || i > c.n {
		panic("packed: insert out of range")
	}
	if c.w == 0 && i == c.n && c.extend(x) || c.w == wGrid && i == c.n && c.gridAppend(x) {
		return
	}
	c.materialize()
	d, ok := c.fast(x)
	if !ok {
		d = c.encode(x)
	}
	c.room()
	switch c.w {
	case 16:
		c.d16 = c.d16[:c.n+1]
		if i < c.n {
			copy(c.d16[i+1:], c.d16[i:c.n])
		}
	case 32:
		c.d32 = c.d32[:c.n+1]
		if i < c.n {
			copy(c.d32[i+1:], c.d32[i:c.n])
		}
	default:
		c.d64 = c.d64[:c.n+1]
		if i < c.n {
			copy(c.d64[i+1:], c.d64[i:c.n])
		}
	}
	c.n++
	c.store(i, d)
}

// Append adds x at the end.
func (c *Ints) Append(x int64) {
	// Without a division: the same number again, a number of a column in
	// units of 1 (mantissas), or the step after the last number (times of
	// a station on its interval).
	switch {
	case c.w == 0:
		if c.extend(x) {
			return
		}
		c.materialize()
	case c.w == wGrid:
		if c.gridAppend(x) {
			return
		}
		c.materialize()
	case c.n == 0:
	case c.w == 16 && c.n < cap(c.d16):
		if d := c.nextDelta(x, int64(c.d16[c.n-1])); d >= math.MinInt16 && d <= math.MaxInt16 && c.base+c.unit*d == x {
			c.d16 = append(c.d16, int16(d))
			c.n++
			return
		}
	case c.w == 32 && c.n < cap(c.d32):
		if d := c.nextDelta(x, int64(c.d32[c.n-1])); d >= math.MinInt32 && d <= math.MaxInt32 && c.base+c.unit*d == x {
			c.d32 = append(c.d32, int32(d))
			c.n++
			return
		}
	}
	c.Insert(c.n, x)
}

// nextDelta is the delta that would stand for x after a last delta of
// last, for Append to check it fits its width and gives x back: none with
// unit 0, x less the base with unit 1, the next step otherwise.
func (c *Ints) nextDelta(x, last int64) int64 {
	switch c.unit {
	case 0:
		return 0
	case 1:
		return x - c.base
	}
	return last + 1
}

// extend appends x to a column of runs, continuing the last run or as a
// new one, if the runs stay few.
func (c *Ints) extend(x int64) bool {
	switch {
	case c.n == 0:
		c.base, c.unit, c.from, c.runs = x, 0, 0, c.runs[:0]
	case c.n == 1:
		// The first two numbers set the step.
		step, ok := sub(x, c.base)
		if !ok {
			return false
		}
		c.unit = step
	case c.base+c.unit*int64(c.n-c.from) == x:
	case c.nearStep(c.base+c.unit*int64(c.n-1-c.from), x) && c.regrid(x):
		return true // jittered times: a grid
	case len(c.runs)+1 < maxRuns(c.n+1):
		c.runs = append(c.runs, run{c.base, c.n})
		c.base, c.from = x, c.n
	default:
		return false
	}
	c.n++
	return true
}

// materialize stores the numbers of a column of runs or a grid, as closely
// as they allow.
func (c *Ints) materialize() {
	if c.w != 0 && c.w != wGrid {
		return
	}
	d64 := make([]int64, c.n, max(c.n+1, c.hint))
	for i := range c.n {
		d64[i] = c.At(i)
	}
	c.d64, c.base, c.unit, c.w = d64, 0, 1, 64
	c.from, c.runs, c.hit = 0, nil, 0
	if c.n > 0 {
		c.narrow()
	}
}

// DropFront removes the first k numbers, and packs what remains as
// closely as it can.
func (c *Ints) DropFront(k int) {
	if k < 0 || k > c.n {
		panic("packed: drop out of range")
	}
	if c.w == 0 {
		c.dropRuns(k)
		return
	}
	c.materialize() // a grid: packed again below
	switch c.w {
	case 16:
		c.d16 = c.d16[:copy(c.d16, c.d16[k:c.n])]
	case 32:
		c.d32 = c.d32[:copy(c.d32, c.d32[k:c.n])]
	default:
		c.d64 = c.d64[:copy(c.d64, c.d64[k:c.n])]
	}
	c.n -= k
	c.repack()
}

// dropRuns removes the first k numbers of a column of runs.
func (c *Ints) dropRuns(k int) {
	if k >= c.from {
		// The runs before the last go, and k − from of the last.
		c.base += c.unit * int64(k-c.from)
		c.from, c.runs = 0, c.runs[:0]
	} else {
		j := sort.Search(len(c.runs), func(j int) bool { return c.runs[j].end > k })
		start := 0
		if j > 0 {
			start = c.runs[j-1].end
		}
		c.runs[j].first += c.unit * int64(k-start)
		c.runs = c.runs[:copy(c.runs, c.runs[j:])]
		for j := range c.runs {
			c.runs[j].end -= k
		}
		c.from -= k
	}
	if cap(c.runs) > 2*len(c.runs)+4 {
		c.runs = slices.Clip(slices.Clone(c.runs))
	}
	c.n -= k
	if c.n == 0 {
		c.base, c.unit = 0, 0
	}
}

// fast returns the d of x when x fits the column as it is.
func (c *Ints) fast(x int64) (int64, bool) {
	if c.n == 0 || c.w == 64 {
		return x, c.w == 64
	}
	delta, ok := sub(x, c.base)
	if !ok {
		return 0, false
	}
	var d int64
	switch c.unit {
	case 0:
		if delta != 0 {
			return 0, false
		}
	case 1:
		d = delta
	default:
		if d = delta / c.unit; d*c.unit != delta {
			return 0, false
		}
	}
	return d, width(d) <= c.w
}

// encode returns the d of x, first changing the column's base, unit or
// width as x needs.
func (c *Ints) encode(x int64) int64 {
	if c.w == 64 {
		return x
	}
	if c.n == 0 {
		c.base, c.unit = x, 0
		return 0
	}
	delta, ok := sub(x, c.base)
	if !ok || delta == math.MinInt64 {
		c.widen(64)
		return x
	}
	if c.unit == 0 || delta%c.unit != 0 {
		if !c.rescale(gcd(c.unit, abs(delta))) {
			c.widen(64)
			return x
		}
	}
	d := delta / c.unit
	switch width(d) {
	case 16, c.w:
		return d
	case 64:
		c.widen(64)
		return x
	}
	// Before widening, move the base to the middle of the numbers with
	// x: times only grow, and leave 16 bits every few weeks.
	lo, hi := c.dRange()
	lo, hi = min(lo, d), max(hi, d)
	mid := lo + (hi-lo)/2
	if width(hi-mid) <= c.w && width(lo-mid) <= c.w {
		c.shift(mid)
		return d - mid
	}
	c.widen(max(width(hi-mid), width(lo-mid)))
	if c.w == 64 {
		return x
	}
	c.shift(mid)
	return d - mid
}

// shift moves the base by mid units.
func (c *Ints) shift(mid int64) {
	switch c.w {
	case 16:
		for i := range c.n {
			c.d16[i] -= int16(mid)
		}
	case 32:
		for i := range c.n {
			c.d32[i] -= int32(mid)
		}
	}
	c.base += c.unit * mid
}

// store writes d, which fits the column's width, at i.
func (c *Ints) store(i int, d int64) {
	switch c.w {
	case 16:
		c.d16[i] = int16(d)
	case 32:
		c.d32[i] = int32(d)
	default:
		c.d64[i] = d
	}
}

// rescale makes u, a divisor of the unit (or any unit when it is 0), the
// unit: every d is multiplied by unit/u, in a wider array if need be. It
// reports false when some d would not fit even in 64 bits.
func (c *Ints) rescale(u int64) bool {
	if c.unit == 0 {
		c.unit = u // every d is 0
		return true
	}
	f := c.unit / u
	lo, hi := c.dRange()
	if lo < math.MinInt64/f || hi > math.MaxInt64/f {
		return false
	}
	if need := max(width(lo*f), width(hi*f)); need > c.w {
		if need == 64 {
			return false
		}
		c.widen(need)
	}
	for i := range c.n {
		switch c.w {
		case 16:
			c.d16[i] *= int16(f)
		default:
			c.d32[i] *= int32(f)
		}
	}
	c.unit = u
	return true
}

// widen moves the column to width w (64: the numbers themselves).
func (c *Ints) widen(w uint8) {
	if w <= c.w {
		return
	}
	capacity := c.n + 1
	switch c.w {
	case 16:
		capacity = max(capacity, cap(c.d16))
	case 32:
		capacity = max(capacity, cap(c.d32))
	}
	switch w {
	case 32:
		d32 := make([]int32, c.n, capacity)
		for i := range c.n {
			d32[i] = int32(c.d16[i])
		}
		c.d32 = d32
	case 64:
		d64 := make([]int64, c.n, capacity)
		for i := range c.n {
			d64[i] = c.At(i)
		}
		c.d64 = d64
		c.base, c.unit = 0, 1
	}
	c.d16 = nil
	if w == 64 {
		c.d32 = nil
	}
	c.w = w
}

// room makes room for one more number.
func (c *Ints) room() {
	var capacity int
	switch c.w {
	case 16:
		capacity = cap(c.d16)
	case 32:
		capacity = cap(c.d32)
	default:
		capacity = cap(c.d64)
	}
	if c.n < capacity {
		return
	}
	c.realloc(grow(c.n, c.hint))
}

func grow(n, hint int) int {
	if n < hint {
		return min(max(2*n, 8), hint)
	}
	return n + n/4 + 8
}

// realloc moves the numbers to an array of the given capacity.
func (c *Ints) realloc(capacity int) {
	switch c.w {
	case 16:
		c.d16 = append(make([]int16, 0, capacity), c.d16[:c.n]...)
	case 32:
		c.d32 = append(make([]int32, 0, capacity), c.d32[:c.n]...)
	default:
		c.d64 = append(make([]int64, 0, capacity), c.d64[:c.n]...)
	}
}

// repack, after numbers are dropped, gives the array back when the
// numbers left are a few runs, and moves a column wider than 16 bits to a
// narrower width and coarser unit when its numbers now allow. An array
// more than twice as long as needed is given back too.
func (c *Ints) repack() {
	if c.w == 0 || c.toRuns() || c.toGrid() {
		return
	}
	if c.w != 16 {
		c.narrow()
	}
	var capacity int
	switch c.w {
	case 16:
		capacity = cap(c.d16)
	case 32:
		capacity = cap(c.d32)
	default:
		capacity = cap(c.d64)
	}
	if need := max(c.n+c.n/2, c.hint); capacity > 2*need+64 {
		c.realloc(need)
	}
}

// toRuns turns the column into runs if its numbers are a few runs of the
// step between the first two or the last two, and reports whether they
// are.
func (c *Ints) toRuns() bool {
	if c.n < 3 {
		return c.runsOf(0)
	}
	// Counted on the stored d first: most columns that are not runs (the
	// values) show it within their first few numbers.
	limit := maxRuns(c.n) - 1
	d := func(i int) int64 {
		switch c.w {
		case 16:
			return int64(c.d16[i])
		case 32:
			return int64(c.d32[i])
		}
		return c.d64[i]
	}
	for _, k := range []int{1, c.n - 1} {
		step := d(k) - d(k-1)
		if c.breaks(step, limit) < limit {
			return c.runsOf(c.At(k) - c.At(k-1))
		}
	}
	return false
}

// breaks counts, up to limit, where the stored d do not go on by step.
func (c *Ints) breaks(step int64, limit int) int {
	n := 0
	switch c.w {
	case 16:
		for i := 1; i < c.n && n < limit; i++ {
			if int64(c.d16[i])-int64(c.d16[i-1]) != step {
				n++
			}
		}
	case 32:
		for i := 1; i < c.n && n < limit; i++ {
			if int64(c.d32[i])-int64(c.d32[i-1]) != step {
				n++
			}
		}
	default:
		for i := 1; i < c.n && n < limit; i++ {
			if c.d64[i]-c.d64[i-1] != step {
				n++
			}
		}
	}
	return n
}

// runsOf turns the column into runs of step if its numbers are few enough
// of them, and reports whether they are.
func (c *Ints) runsOf(step int64) bool {
	var runs []run
	var base int64
	if c.n > 0 {
		base = c.At(0)
	}
	from := 0
	for i := 1; i < c.n; i++ {
		x := c.At(i)
		if base+step*int64(i-from) == x {
			continue
		}
		if len(runs)+1 >= maxRuns(c.n) {
			return false
		}
		runs = append(runs, run{base, i})
		base, from = x, i
	}
	c.base, c.unit, c.from, c.runs, c.w = base, step, from, slices.Clip(runs), 0
	if c.n < 2 {
		c.unit = 0
	}
	c.d16, c.d32, c.d64 = nil, nil, nil
	return true
}

// narrow packs a column of 32 or 64 bits as narrowly as its numbers allow.
func (c *Ints) narrow() {
	lo, hi := c.At(0), c.At(0)
	for i := 1; i < c.n; i++ {
		x := c.At(i)
		lo, hi = min(lo, x), max(hi, x)
	}
	span, ok := sub(hi, lo)
	if !ok {
		return // more than an int64 apart: stays as it is
	}
	// The distances are multiples of the unit: the walk ends when the
	// divisor comes down to it.
	var u int64
	for i := 0; i < c.n && u != c.unit; i++ {
		u = gcd(u, c.At(i)-lo)
	}
	if u == 0 {
		u = 1
	}
	steps := span / u
	w := width(steps - steps/2)
	if w >= c.w {
		return
	}
	base := lo + u*(steps/2)
	capacity := max(c.n+c.n/2, c.hint)
	switch w {
	case 16:
		d16 := make([]int16, c.n, capacity)
		for i := range c.n {
			d16[i] = int16((c.At(i) - base) / u)
		}
		c.d16, c.d32, c.d64 = d16, nil, nil
	case 32:
		d32 := make([]int32, c.n, capacity)
		for i := range c.n {
			d32[i] = int32((c.At(i) - base) / u)
		}
		c.d16, c.d32, c.d64 = nil, d32, nil
	}
	c.base, c.unit, c.w = base, u, w
}

// scale multiplies every number by f, reporting false (and changing
// nothing) when one of them would leave (−limit, limit).
func (c *Ints) scale(f, limit int64) bool {
	for i := range c.n {
		if x := c.At(i); x <= -limit/f || x >= limit/f {
			return false
		}
	}
	switch c.w {
	case 64:
		for i := range c.d64 {
			c.d64[i] *= f
		}
	case 0, wGrid:
		for j := range c.runs {
			c.runs[j].first *= f
		}
		c.junit *= f
		fallthrough
	default:
		c.base *= f
		c.unit *= f
	}
	return true
}

// dRange is the least and greatest d held (0, 0 when empty) of a column
// of 16, 32 or 64 bits.
func (c *Ints) dRange() (lo, hi int64) {
	if c.n == 0 {
		return 0, 0
	}
	switch c.w {
	case 16:
		l, h := c.d16[0], c.d16[0]
		for _, d := range c.d16[1:c.n] {
			l, h = min(l, d), max(h, d)
		}
		return int64(l), int64(h)
	case 32:
		l, h := c.d32[0], c.d32[0]
		for _, d := range c.d32[1:c.n] {
			l, h = min(l, d), max(h, d)
		}
		return int64(l), int64(h)
	}
	l, h := c.d64[0], c.d64[0]
	for _, d := range c.d64[1:c.n] {
		l, h = min(l, d), max(h, d)
	}
	return l, h
}

// width is the narrowest width that holds d.
func width(d int64) uint8 {
	switch {
	case d >= math.MinInt16 && d <= math.MaxInt16:
		return 16
	case d >= math.MinInt32 && d <= math.MaxInt32:
		return 32
	}
	return 64
}

// sub is a − b, and whether it did not overflow.
func sub(a, b int64) (int64, bool) {
	d := a - b
	return d, (a >= b) == (d >= 0)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// gcd of a ≥ 0 and b > 0 (binary: no division). A distance of 2⁶³ (abs of
// the least int64) counts as its unsigned value.
func gcd(a, b int64) int64 {
	if a == 0 {
		return b
	}
	x, y := uint64(a), uint64(b)
	shift := bits.TrailingZeros64(x | y)
	x >>= bits.TrailingZeros64(x)
	for y != 0 {
		y >>= bits.TrailingZeros64(y)
		if x > y {
			x, y = y, x
		}
		y -= x
	}
	return int64(x << shift)
}
