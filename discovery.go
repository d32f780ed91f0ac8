package main

import (
	"context"
	"sync"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// discovery runs the background listing while the config enables it.
type discovery struct {
	d     *collector.Discovery // nil while off
	shown prometheus.Collector // d under the project label
	stop  context.CancelFunc
	done  sync.WaitGroup
}

// configure starts, reconfigures or stops the listing.
// Its metrics show under the project label.
func (d *discovery) configure(ctx context.Context, project string, cfg config.Discovery, refresher *refresh.Refresher, reg *collector.Set, logger log.Logger) {
	switch {
	case cfg.Enabled && d.d == nil:
		d.d = collector.NewDiscovery(project, cfg, refresher, logger)
		d.shown = prometheus.WrapCollectorWith(prometheus.Labels{"project": project}, d.d)
		reg.MustRegister(d.shown)
		ctx, d.stop = context.WithCancel(ctx)
		d.done.Add(1)
		go func(run *collector.Discovery) {
			defer d.done.Done()
			run.Run(ctx)
		}(d.d)
	case cfg.Enabled:
		d.d.Configure(cfg)
	case d.d != nil:
		d.stop()
		d.done.Wait()
		reg.Unregister(d.shown)
		d.d, d.shown = nil, nil
	}
}
