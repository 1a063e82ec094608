package packed

import "math"

// Floats is a column of float64 values. While every value is a short
// decimal, the value v = m / 10^k of a decimal mantissa m and the column's
// exponent k, it keeps the mantissas in an Ints (2 bytes a value for a
// gauge's millimetres); once one is not, it keeps the float64s, until that
// value is dropped. A value read back is the value put in, bit for bit,
// except that a negative zero reads back as zero: the QC tests cannot tell
// them apart (they only add, subtract, compare and take absolute values).
// The zero value is an empty column.
type Floats struct {
	m    Ints      // the mantissas, while decimal
	k    int       // the decimal exponent
	f    []float64 // the values, once one of them is not a short decimal
	flat bool      // f holds the values
}

// maxExp is the most decimals a mantissa stands for; with at most 2⁵³ in
// the mantissa, m and 10^k are both exact float64s, so m / 10^k is the
// correctly rounded quotient whatever k the column uses: making k greater,
// with m scaled to match, reads the same value back.
const maxExp = 15

const maxMantissa = 1 << 53

var pow10 = [maxExp + 1]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// Len is the number of values in the column.
func (c *Floats) Len() int {
	if c.flat {
		return len(c.f)
	}
	return c.m.Len()
}

// Bytes is the memory the column's array takes.
func (c *Floats) Bytes() int { return c.m.Bytes() + 8*cap(c.f) }

// SetHint tells the column how long it is expected to grow (Ints.SetHint).
func (c *Floats) SetHint(n int) { c.m.SetHint(n) }

// At is the i-th value.
func (c *Floats) At(i int) float64 {
	if c.flat {
		return c.f[i]
	}
	m := float64(c.m.At(i))
	if c.k == 0 {
		return m
	}
	return m / pow10[c.k]
}

// Set replaces the i-th value with v.
func (c *Floats) Set(i int, v float64) {
	if c.flat {
		c.f[i] = v
		return
	}
	if m, ok := c.mantissa(v); ok {
		c.m.Set(i, m)
		return
	}
	c.toFlat()
	c.f[i] = v
}

// Insert puts v before the i-th value (at the end when i is Len).
func (c *Floats) Insert(i int, v float64) {
	if !c.flat {
		if m, ok := c.mantissa(v); ok {
			c.m.Insert(i, m)
			return
		}
		c.toFlat()
	}
	if i < 0 || i > len(c.f) {
		panic("packed: insert out of range")
	}
	c.f = append(c.f, 0)
	copy(c.f[i+1:], c.f[i:])
	c.f[i] = v
}

// Append adds v at the end.
func (c *Floats) Append(v float64) {
	if !c.flat && c.m.n > 0 {
		if m, ok := decimal(v, c.k); ok {
			c.m.Append(m)
			return
		}
	}
	c.Insert(c.Len(), v)
}

// DropFront removes the first k values, and packs what remains as closely
// as it can.
func (c *Floats) DropFront(k int) {
	if !c.flat {
		c.m.DropFront(k)
		if c.m.Len() == 0 {
			c.k = 0
		}
		return
	}
	c.f = c.f[:copy(c.f, c.f[k:])]
	c.unflatten()
}

// mantissa returns the mantissa of v under the column's exponent, first
// raising the exponent when v has more decimals. It reports false when v
// is no decimal of at most maxExp decimals and 2⁵³ in its mantissa, or when
// the mantissas held would then exceed 2⁵³.
func (c *Floats) mantissa(v float64) (int64, bool) {
	if c.m.Len() == 0 {
		c.k = 0
	}
	for k := c.k; k <= maxExp; k++ {
		m, ok := decimal(v, k)
		if !ok {
			continue
		}
		if k > c.k && !c.scale(k) {
			return 0, false
		}
		return m, true
	}
	return 0, false
}

// decimal is the mantissa m with m / 10^k == v, if there is one within
// 2⁵³.
func decimal(v float64, k int) (int64, bool) {
	x := v * pow10[k]
	if !(math.Abs(x) < maxMantissa) { // also NaN
		return 0, false
	}
	// Rounded half away from zero, as math.Round but cheaper; the check
	// below decides.
	m := float64(int64(x + math.Copysign(0.5, x)))
	if k == 0 {
		return int64(m), m == v
	}
	return int64(m), m/pow10[k] == v
}

// scale raises the column's exponent to k, multiplying every mantissa by
// 10^(k − c.k), if all of them stay within 2⁵³.
func (c *Floats) scale(k int) bool {
	if !c.m.scale(int64(pow10[k-c.k]), maxMantissa) {
		return false
	}
	c.k = k
	return true
}

// toFlat moves the values to float64s.
func (c *Floats) toFlat() {
	n := c.m.Len()
	f := make([]float64, n, max(n+1, c.m.hint))
	for i := range n {
		f[i] = c.At(i)
	}
	c.f, c.flat = f, true
	c.m = Ints{hint: c.m.hint}
	c.k = 0
}

// unflatten moves float64 values back to mantissas when all of them are
// short decimals again.
func (c *Floats) unflatten() {
	var d Floats
	d.m.hint = c.m.hint
	for _, v := range c.f {
		if _, ok := d.mantissa(v); !ok {
			if 2*len(c.f)+64 < cap(c.f) {
				c.f = append(make([]float64, 0, max(len(c.f)+len(c.f)/2, c.m.hint)), c.f...)
			}
			return
		}
	}
	for _, v := range c.f {
		d.Append(v)
	}
	d.m.repack()
	*c = d
}
