package simulator

import (
	"io"
	"net/http"
	"strconv"
	"strings"
)

// randomFault draws the injected fault of one request, if any.
func (s *Server) randomFault() (Fault, bool) {
	o := &s.opts
	total := o.ErrorRate + o.ThrottleRate + o.SlowRate + o.MalformedRate
	if total <= 0 {
		return Fault{}, false
	}
	s.mu.Lock()
	x := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case x < o.ErrorRate:
		return FaultInternal(), true
	case x < o.ErrorRate+o.ThrottleRate:
		return FaultThrottled(), true
	case x < o.ErrorRate+o.ThrottleRate+o.SlowRate:
		return FaultSlow(o.SlowDelay), true
	case x < total:
		return FaultMalformed(), true
	}
	return Fault{}, false
}

// serveFault waits f.Delay, then answers f, or calls normal for a Status 0 fault.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, reqID string, f Fault, normal func()) {
	if !wait(r.Context(), f.Delay) {
		return
	}
	h := w.Header()
	for k, v := range f.Header {
		h.Set(k, v)
	}
	if f.Status == 0 {
		normal()
		return
	}
	if f.ContentType != "" {
		h.Set("Content-Type", f.ContentType)
	} else {
		h["Content-Type"] = nil // keep net/http from sniffing one
	}
	h.Set("Content-Length", strconv.Itoa(len(f.Body)))
	w.WriteHeader(f.Status)
	_, _ = io.WriteString(w, f.Body)
}

// writeJSONError answers {"error_code","error_msg","request_id"} with reqID (taken from the
// X-Request-Id header already set when reqID is empty).
func (s *Server) writeJSONError(w http.ResponseWriter, reqID string, status int, code, msg string) {
	if reqID == "" {
		reqID = w.Header().Get(headerReqID)
	}
	ct := contentJSON
	if strings.HasPrefix(code, "MSS.") {
		ct = contentMSS
	}
	s.writeBody(w, status, ct, []byte(errorBody(code, msg, reqID)))
}

func (s *Server) writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
