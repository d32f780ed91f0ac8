package collector

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The writers of the tasks' exposition, reused across scrapes.
var (
	// gzip at BestSpeed: about a third of the default level's CPU for an exposition about
	// 10 % larger; on a warm scrape, compression is most of the work left. The writers
	// are kept in a short list rather than a sync.Pool, which every GC empties (a cold
	// scrape of 1,000 tasks runs a few): a new writer allocates about 1 MB.
	gzipWriters = make(chan *gzip.Writer, 2)
	bufPool     = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
	orderPool   = sync.Pool{New: func() any { return new([]taskLine) }}
)

// textFormat negotiates the exposition format as promhttp does; ok is false when the
// client asks for something other than the text format (protobuf), or filters families
// with name[], which the text path leaves to promhttp.
func textFormat(r *http.Request) (expfmt.Format, bool) {
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	if format.FormatType() != expfmt.TypeTextPlain {
		return format, false
	}
	if r.URL != nil && strings.Contains(r.URL.RawQuery, "name") && r.URL.Query().Has("name[]") {
		return format, false
	}
	return format, true
}

// gatherExtra gathers the process-wide collectors and the answer's own series (scrape
// duration, probe success) in one registry, as promhttp would. A collector's error is
// logged and the rest is served, like promhttp's ContinueOnError.
func gatherExtra(logger log.Logger, cs ...prometheus.Collector) []*dto.MetricFamily {
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			level.Error(logger).Log("msg", "Registering the series of a scrape", "err", err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		level.Error(logger).Log("msg", "Serving metrics", "err", "error gathering metrics: "+err.Error())
	}
	return mfs
}

// writeExposition answers with the tasks' series (each project's status_names applied,
// statusNames gives them) and the families of mfs,
// merged in the order of their names as client_golang sorts them, in the text format,
// gzipped when the client accepts it (a pooled writer). The tasks' lines are in the order
// of their projects and ids.
func writeExposition(w http.ResponseWriter, r *http.Request, format expfmt.Format, results []result, statusNames func(project string) map[string]string, mfs []*dto.MetricFamily, logger log.Logger) {
	h := w.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", string(format))
	var out io.Writer = w
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		var gz *gzip.Writer
		select {
		case gz = <-gzipWriters:
			gz.Reset(w)
		default:
			gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		}
		defer func() {
			_ = gz.Close()
			gz.Reset(nil)
			select {
			case gzipWriters <- gz:
			default:
			}
		}()
		out = gz
	}
	bw := bufPool.Get().(*bufio.Writer)
	bw.Reset(out)
	defer func() {
		_ = bw.Flush()
		bw.Reset(nil)
		bufPool.Put(bw)
	}()

	op := orderPool.Get().(*[]taskLine)
	defer orderPool.Put(op)
	tasks := (*op)[:0]
	var names map[string]string
	project := ""
	for i := range results {
		r := &results[i]
		if i == 0 || r.project != project { // results come grouped by project: one lookup each
			names, project = statusNames(r.project), r.project
		}
		if utf8.ValidString(r.id) { // else no series can carry it (NewConstMetric refuses them all)
			t := taskLine{r: r, id: escaped(r.id), statusNames: names}
			if r.vals != nil {
				t.vals = *r.vals
			}
			tasks = append(tasks, t)
		}
	}
	slices.SortFunc(tasks, func(a, b taskLine) int {
		return cmp.Or(strings.Compare(a.r.project, b.r.project), strings.Compare(a.r.id, b.r.id))
	})
	*op = tasks

	enc := expfmt.NewEncoder(bw, format)
	next := 0 // the next family of mfs
	writeUpTo := func(name string) {
		for ; next < len(mfs) && (name == "" || mfs[next].GetName() < name); next++ {
			if err := enc.Encode(mfs[next]); err != nil {
				level.Error(logger).Log("msg", "Serving metrics", "err", "error encoding and sending metric family: "+err.Error())
			}
		}
	}
	for _, f := range families.byName {
		writeUpTo(f.name)
		writeTaskFamily(bw, f, tasks)
	}
	writeUpTo("")
}

// acceptsGzip reports whether promhttp would answer r gzipped: the best q of an
// Accept-Encoding entry for gzip (or *) beats identity's.
func acceptsGzip(r *http.Request) bool {
	header := r.Header.Values("Accept-Encoding")
	if len(header) == 0 {
		return false
	}
	identity, gz := -1.0, -1.0
	for _, line := range header {
		for _, spec := range strings.Split(line, ",") {
			value, params, _ := strings.Cut(spec, ";")
			value = strings.ToLower(strings.TrimSpace(value))
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.TrimSpace(k) == "q" {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					}
				}
			}
			if value == "identity" || value == "*" {
				identity = max(identity, q)
			}
			if value == "gzip" || value == "*" {
				gz = max(gz, q)
			}
		}
	}
	return gz > identity && gz > 0
}
