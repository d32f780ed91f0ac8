package simulator

// Faults below HTTP: answers that break on the wire. A Fault set with SetFault is always a
// complete HTTP answer; a WireFault takes the answer the Server would give (after its
// authentication, counting and SetFault) and breaks it while it is being sent.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// WireFault is a way for an answer to break on the wire.
type WireFault int

const (
	// WireResetMidBody sends the status line, the headers with the true Content-Length and
	// the first half of the body, then resets the TCP connection (RST, SO_LINGER 0): the
	// client sees the connection reset while it reads the body.
	WireResetMidBody WireFault = iota + 1
	// WireShortBody declares a Content-Length WireShortBy bytes larger than the body, sends
	// the whole body, then closes the connection normally (FIN): the body ends short.
	WireShortBody
)

// WireShortBy is how many bytes a WireShortBody answer promises and never sends.
const WireShortBy = 512

// String names the fault.
func (f WireFault) String() string {
	switch f {
	case WireResetMidBody:
		return "reset mid-body"
	case WireShortBody:
		return "short body"
	}
	return "WireFault(" + strconv.Itoa(int(f)) + ")"
}

// Wire serves next (normally a *Server) and breaks the ShowTask answers of the task ids
// given to Set. It needs HTTP/1.x, because breaking an answer means taking over the
// connection; over HTTP/2 a broken answer becomes an aborted stream. Other requests pass
// through untouched.
type Wire struct {
	next   http.Handler
	broken atomic.Int64

	mu     sync.Mutex
	faults map[string]WireFault
}

// NewWire wraps next.
func NewWire(next http.Handler) *Wire {
	return &Wire{next: next, faults: map[string]WireFault{}}
}

// Set breaks every ShowTask answer for id with f.
func (w *Wire) Set(id string, f WireFault) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults[id] = f
}

// Clear lets the answers for id through again.
func (w *Wire) Clear(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.faults, id)
}

// Broken is the number of answers broken so far.
func (w *Wire) Broken() int64 { return w.broken.Load() }

// ServeHTTP implements http.Handler.
func (w *Wire) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r)
	w.mu.Lock()
	f, ok := w.faults[rt.taskID]
	w.mu.Unlock()
	if rt.op != OpShowTask || !ok {
		w.next.ServeHTTP(rw, r)
		return
	}
	// The answer is made in full first, so that authentication and request counting
	// happen exactly as without the fault.
	rec := &heldAnswer{header: http.Header{}}
	w.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if r.Context().Err() != nil {
		return // the client went away while the answer was made
	}
	conn, buf, err := http.NewResponseController(rw).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	w.broken.Add(1)
	body := rec.body
	length := len(body)
	switch f {
	case WireResetMidBody:
		body = body[:len(body)/2]
	case WireShortBody:
		length += WireShortBy
	}
	writeBroken(buf, rec.status, rec.header, length, body)
	if f == WireResetMidBody {
		conn = reset(conn)
	}
	_ = conn.Close()
}

// writeBroken writes an HTTP/1.1 answer that declares length bytes of body and sends body.
func writeBroken(buf *bufio.ReadWriter, status int, header http.Header, length int, body []byte) {
	header = header.Clone()
	header.Set("Content-Length", strconv.Itoa(length))
	header.Del("Transfer-Encoding")
	fmt.Fprintf(buf, "HTTP/1.1 %03d %s\r\n", status, http.StatusText(status))
	_ = header.Write(buf)
	_, _ = buf.WriteString("\r\n")
	_, _ = buf.Write(body)
	_ = buf.Flush()
}

// reset returns the TCP connection under conn (under TLS too, so that no close_notify
// softens the break), set so that closing it sends a RST instead of a FIN.
func reset(conn net.Conn) net.Conn {
	if c, ok := conn.(interface{ NetConn() net.Conn }); ok { // TLS
		conn = c.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	return conn
}

// heldAnswer keeps an answer instead of sending it.
type heldAnswer struct {
	header http.Header
	status int
	body   []byte
}

func (h *heldAnswer) Header() http.Header { return h.header }

func (h *heldAnswer) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldAnswer) Write(p []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	h.body = append(h.body, p...)
	return len(p), nil
}
