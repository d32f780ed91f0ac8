package simulator

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"

	"github.com/metastudio-exporter/metastudio_exporter/auth"
)

func TestWireFaults(t *testing.T) {
	s, clock := newSim(t, Options{})
	for _, id := range []string{"reset", "short", "whole"} {
		s.SetTask(id, map[string]any{"task_id": id, "task_name": "a name long enough to cut in two", "total_count": 7})
	}
	wire := NewWire(s)
	wire.Set("reset", WireResetMidBody)
	wire.Set("short", WireShortBody)
	srv := httptest.NewServer(wire)
	defer srv.Close()
	transport := &http.Transport{DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	want := map[string][]byte{} // each task's answer, straight from the simulator
	for _, id := range []string{"reset", "short", "whole"} {
		want[id] = serve(s, signed(clock, showPath(id))).body
	}
	get := func(id string) (*http.Response, []byte, error) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+showPath(id), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(auth.HeaderProjectID, testProject)
		auth.Sign(req, nil, auth.Keys{AccessKey: testAK, SecretKey: testSK}, clock.Now())
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}

	// The connection is reset once the headers and part of the body are out.
	resp, body, err := get("reset")
	if err == nil || resp == nil || resp.StatusCode != 200 || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reset mid-body: %v, %v; want a 200 whose body read ends in a connection reset", resp, err)
	}
	if len(body) > len(want["reset"])/2 {
		t.Errorf("reset mid-body: %d bytes of a %d-byte body came through", len(body), len(want["reset"]))
	}

	// The declared length is longer than what comes, and the connection closes.
	resp, body, err = get("short")
	if resp == nil || resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || string(body) != string(want["short"]) {
		t.Errorf("short body: %v, %v, %q; want the whole body then an unexpected EOF", resp, err, body)
	}
	if n := strconv.Itoa(len(want["short"]) + WireShortBy); resp != nil && resp.Header.Get("Content-Length") != n {
		t.Errorf("short body: Content-Length %q, want %s", resp.Header.Get("Content-Length"), n)
	}

	// Other tasks pass untouched; every request was authenticated and counted.
	if resp, body, err = get("whole"); err != nil || resp.StatusCode != 200 || string(body) != string(want["whole"]) {
		t.Errorf("an unbroken task: %v, %v, %q", resp, err, body)
	}
	if n := s.Requests(OpShowTask); n != 6 { // three direct, three over the wire
		t.Errorf("the simulator counted %d ShowTask requests, want 6", n)
	}
	if n := wire.Broken(); n != 2 {
		t.Errorf("Broken() = %d, want 2", n)
	}

	// A cleared fault gives the normal answer again.
	wire.Clear("reset")
	if resp, body, err = get("reset"); err != nil || resp.StatusCode != 200 || string(body) != string(want["reset"]) {
		t.Errorf("after Clear: %v, %v, %q", resp, err, body)
	}
	if WireResetMidBody.String() != "reset mid-body" || WireShortBody.String() != "short body" || WireFault(9).String() != "WireFault(9)" {
		t.Error("WireFault names")
	}
}
