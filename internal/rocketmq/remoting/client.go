package remoting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrClosed is returned by calls on a closed Client; Client.Err wraps it
// with the cause when the connection failed.
var ErrClosed = errors.New("remoting: client closed")

// DefaultWriteTimeout bounds a frame write when the call's context has no
// deadline.
const DefaultWriteTimeout = 30 * time.Second

// RequestHandler answers a request the server sends to the client (for
// example NotifyConsumerIDsChanged). It runs on its own goroutine; it may
// call Invoke but must not call Close. A nil result sends no answer;
// otherwise the result's Opaque and response flag are set from req.
type RequestHandler func(req *Command) *Command

// Option configures Dial.
type Option func(*Client)

// WithRequestHandler sets the handler for server → client requests. Without
// one they are logged at debug level and dropped (as rocketmq-client-go
// does for codes it has no processor for).
func WithRequestHandler(h RequestHandler) Option { return func(c *Client) { c.handler = h } }

// WithMaxFrame bounds incoming frames (default DefaultMaxFrame); a larger
// frame closes the connection.
func WithMaxFrame(n int) Option { return func(c *Client) { c.maxFrame = n } }

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// Client is one remoting connection. It is safe for concurrent use: any
// number of Invoke calls may be in flight; responses are matched by opaque.
// One read-loop goroutine per Client runs until Close or a connection
// error; Close waits for it and for running request handlers.
type Client struct {
	conn     net.Conn
	log      *zap.Logger
	maxFrame int
	handler  RequestHandler

	opaque atomic.Int32
	wmu    sync.Mutex // serialises frame writes

	mu      sync.Mutex
	pending map[int32]chan *Command
	err     error // set once, when closed

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup // read loop and request handlers
}

// Dial connects to addr ("host:port") and starts the read loop.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("remoting: dial %s: %w", addr, err)
	}
	return NewClient(conn, opts...), nil
}

// NewClient runs the protocol over an established connection (the Client
// owns and closes it).
func NewClient(conn net.Conn, opts ...Option) *Client {
	c := &Client{
		conn: conn, log: zap.NewNop(), maxFrame: DefaultMaxFrame,
		pending: map[int32]chan *Command{}, done: make(chan struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	c.log = c.log.With(zap.String("remote", conn.RemoteAddr().String()))
	c.wg.Add(1)
	go c.readLoop()
	return c
}

// RemoteAddr is the server's address.
func (c *Client) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// Done is closed when the client is closed or the connection failed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil while the client is open; afterwards an error wrapping
// ErrClosed (and the connection error that closed it, if any).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Invoke sends req and waits for the response with the same opaque. req is
// not modified: a copy is sent with a fresh opaque and the response flag
// cleared. Any response code is returned as a response, not as an error;
// errors are ctx's error, ErrClosed (wrapped) and write errors (which also
// close the client: a partly written frame leaves the stream unusable).
func (c *Client) Invoke(ctx context.Context, req *Command) (*Command, error) {
	r := *req
	r.Opaque = c.opaque.Add(1)
	r.Flag &^= FlagResponse
	ch := make(chan *Command, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[r.Opaque] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, r.Opaque)
		c.mu.Unlock()
	}()
	if err := c.write(ctx, &r); err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		select { // a response may have arrived just before the close
		case resp := <-ch:
			return resp, nil
		default:
		}
		return nil, c.Err()
	}
}

// InvokeOneway sends req (with a fresh opaque) without waiting; a response,
// if the server sends one, is dropped.
func (c *Client) InvokeOneway(ctx context.Context, req *Command) error {
	r := *req
	r.Opaque = c.opaque.Add(1)
	r.Flag &^= FlagResponse
	return c.write(ctx, &r)
}

func (c *Client) write(ctx context.Context, cmd *Command) error {
	frame, err := cmd.Encode()
	if err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultWriteTimeout)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		c.closeWith(err)
		return c.Err()
	}
	if _, err := c.conn.Write(frame); err != nil {
		c.closeWith(err)
		return c.Err()
	}
	return nil
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		cmd, err := ReadCommand(br, c.maxFrame)
		if err != nil {
			c.closeWith(err)
			return
		}
		if cmd.IsResponse() {
			c.mu.Lock()
			ch := c.pending[cmd.Opaque]
			delete(c.pending, cmd.Opaque)
			c.mu.Unlock()
			if ch == nil {
				c.log.Debug("remoting: unmatched response dropped", zap.Int32("opaque", cmd.Opaque), zap.Int16("code", cmd.Code))
				continue
			}
			ch <- cmd // buffered, one response per opaque
			continue
		}
		if c.handler == nil {
			c.log.Debug("remoting: server request without handler dropped", zap.Int16("code", cmd.Code))
			continue
		}
		c.wg.Add(1)
		go c.serve(cmd)
	}
}

func (c *Client) serve(req *Command) {
	defer c.wg.Done()
	resp := c.handler(req)
	if resp == nil {
		return
	}
	r := *resp
	r.Opaque = req.Opaque
	r.Flag |= FlagResponse
	ctx, cancel := context.WithTimeout(context.Background(), DefaultWriteTimeout)
	defer cancel()
	if err := c.write(ctx, &r); err != nil {
		c.log.Debug("remoting: answer to server request failed", zap.Int16("code", req.Code), zap.Error(err))
	}
}

// closeWith records the first cause, closes the connection and wakes every
// waiter.
func (c *Client) closeWith(cause error) {
	c.once.Do(func() {
		err := ErrClosed
		if cause != nil && !errors.Is(cause, ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrClosed, cause)
		}
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		_ = c.conn.Close()
		close(c.done)
	})
}

// Close closes the connection, fails calls in flight with ErrClosed and
// waits for the read loop and running request handlers. It is idempotent;
// it must not be called from a RequestHandler.
func (c *Client) Close() error {
	c.closeWith(ErrClosed)
	c.wg.Wait()
	return nil
}
