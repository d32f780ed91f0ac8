package simulator

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// route is what the path and method say about a request.
type route struct {
	op      string
	handler handler
	project string
	taskID  string
	name    string // the name of the project it is routed to, once known
}

// handler is who answers a request after the body is read.
type handler int

const (
	viaGateway             handler = iota // authentication, then MetaStudio
	viaIAMToken                           // POST /v3/auth/tokens
	viaIAMProjects                        // GET /v3/projects
	viaMetadataToken                      // any method on /meta-data/latest/api/token
	viaMetadataSecurityKey                // any method on /openstack/latest/securitykey
)

// parseRoute recognises the IAM and metadata paths (exactly, one trailing slash tolerated)
// and GET /v2/{project}/ies/task[/{id}] (one trailing slash tolerated). Each segment is
// unescaped, so an id with %2F is one segment.
func parseRoute(r *http.Request) route {
	other := route{op: OpOther}
	if r.URL == nil {
		return other
	}
	p := strings.TrimSuffix(r.URL.EscapedPath(), "/")
	switch p {
	case pathIAMToken:
		if r.Method == http.MethodPost {
			return route{op: OpIAMToken, handler: viaIAMToken}
		}
		return other
	case pathIAMProjects:
		if r.Method == http.MethodGet {
			return route{op: OpIAMProjects, handler: viaIAMProjects}
		}
		return other
	case pathMetadataToken:
		if r.Method == http.MethodPut {
			return route{op: OpMetadataToken, handler: viaMetadataToken}
		}
		return route{op: OpOther, handler: viaMetadataToken}
	case pathMetadataSecurityKey:
		if r.Method == http.MethodGet {
			return route{op: OpMetadataSecurityKey, handler: viaMetadataSecurityKey}
		}
		return route{op: OpOther, handler: viaMetadataSecurityKey}
	}
	if r.Method != http.MethodGet {
		return other
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, seg := range segs {
		raw, err := url.PathUnescape(seg)
		if err != nil || raw == "" {
			return other
		}
		segs[i] = raw
	}
	if len(segs) < 4 || segs[0] != "v2" || segs[2] != "ies" || segs[3] != "task" {
		return other
	}
	switch len(segs) {
	case 4:
		return route{op: OpSearchTask, project: segs[1]}
	case 5:
		return route{op: OpShowTask, project: segs[1], taskID: segs[4]}
	}
	return other
}

// wait sleeps d, or returns false as soon as ctx ends.
func wait(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// readBody reads at most maxBody bytes; tooLarge reports a longer body.
func readBody(r *http.Request) (body []byte, tooLarge bool, err error) {
	if r.Body == nil {
		return nil, false, nil
	}
	body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, false, err
	}
	return body, len(body) > maxBody, nil
}
