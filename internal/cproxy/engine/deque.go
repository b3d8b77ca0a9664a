package engine

// deque is a FIFO/LIFO ring buffer. The zero value is an empty deque.
type deque[T any] struct {
	buf  []T // len is zero or a power of two
	head int
	n    int
}

func (d *deque[T]) len() int { return d.n }

func (d *deque[T]) grow() {
	c := max(8, 2*len(d.buf))
	b := make([]T, c)
	mask := len(d.buf) - 1
	for i := range d.n {
		b[i] = d.buf[(d.head+i)&mask]
	}
	d.buf, d.head = b, 0
}

func (d *deque[T]) pushBack(v T) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.buf[(d.head+d.n)&(len(d.buf)-1)] = v
	d.n++
}

func (d *deque[T]) pushFront(v T) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.head = (d.head - 1) & (len(d.buf) - 1)
	d.buf[d.head] = v
	d.n++
}

// front returns the first element; the deque must not be empty.
func (d *deque[T]) front() T { return d.buf[d.head] }

// popFront removes and returns the first element; ok is false when empty.
func (d *deque[T]) popFront() (v T, ok bool) {
	if d.n == 0 {
		return v, false
	}
	var zero T
	v = d.buf[d.head]
	d.buf[d.head] = zero
	d.head = (d.head + 1) & (len(d.buf) - 1)
	d.n--
	if d.n == 0 {
		d.head = 0
		if len(d.buf) > 1024 {
			d.buf = nil // release the memory of a burst
		}
	}
	return v, true
}

// filter keeps the elements for which keep returns true, in order.
func (d *deque[T]) filter(keep func(T) bool) {
	var zero T
	mask := len(d.buf) - 1
	w := 0
	for i := range d.n {
		v := d.buf[(d.head+i)&mask]
		if keep(v) {
			d.buf[(d.head+w)&mask] = v
			w++
		}
	}
	for i := w; i < d.n; i++ {
		d.buf[(d.head+i)&mask] = zero
	}
	d.n = w
	if d.n == 0 {
		d.head = 0
	}
}

// clear removes every element.
func (d *deque[T]) clear() { *d = deque[T]{} }

// at returns the i-th element from the front; 0 <= i < len().
func (d *deque[T]) at(i int) T { return d.buf[(d.head+i)&(len(d.buf)-1)] }

// set replaces the i-th element from the front; 0 <= i < len().
func (d *deque[T]) set(i int, v T) { d.buf[(d.head+i)&(len(d.buf)-1)] = v }
