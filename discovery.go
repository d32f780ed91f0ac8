package main

import (
	"context"
	"sync"

	"github.com/go-kit/log"

	"github.com/metastudio-exporter/metastudio_exporter/collector"
	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// discovery runs the background listing while the config enables it.
type discovery struct {
	d    *collector.Discovery // nil while off
	stop context.CancelFunc
	done sync.WaitGroup
}

// configure starts, reconfigures or stops the listing.
func (d *discovery) configure(ctx context.Context, cfg config.Discovery, refresher *refresh.Refresher, reg *collector.Set, logger log.Logger) {
	switch {
	case cfg.Enabled && d.d == nil:
		d.d = collector.NewDiscovery(cfg, refresher, logger)
		reg.MustRegister(d.d)
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
		reg.Unregister(d.d)
		d.d = nil
	}
}
