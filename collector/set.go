package collector

import (
	"errors"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Set holds the process-wide collectors (Go and process metrics, API metrics, the guard,
// the rate limit, discovery) that every /metrics answer serves besides the scrape's own
// series. Unlike a second Registry, it is gathered in the same pass as the scrape, so the
// series are checked and sorted once.
type Set struct {
	mu         sync.Mutex
	collectors []prometheus.Collector
}

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{} }

// Register adds c.
func (s *Set) Register(c prometheus.Collector) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.collectors, c) {
		return errors.New("collector already registered")
	}
	s.collectors = append(s.collectors, c)
	return nil
}

// MustRegister adds cs, and panics on a collector added twice (a programming error).
func (s *Set) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := s.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister removes c.
func (s *Set) Unregister(c prometheus.Collector) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.collectors, c)
	if i < 0 {
		return false
	}
	s.collectors = slices.Delete(s.collectors, i, i+1)
	return true
}

func (s *Set) members() []prometheus.Collector {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.collectors)
}

// Describe implements prometheus.Collector.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.members() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.members() {
		c.Collect(ch)
	}
}

var _ prometheus.Registerer = (*Set)(nil)

// replay serves series that were collected already.
type replay []prometheus.Metric

func (r replay) Describe(chan<- *prometheus.Desc) {}

func (r replay) Collect(ch chan<- prometheus.Metric) {
	for _, m := range r {
		ch <- m
	}
}
