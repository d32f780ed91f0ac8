package collector

import (
	"context"
	"fmt"

	"github.com/metastudio-exporter/metastudio_exporter/config"
	"github.com/metastudio-exporter/metastudio_exporter/metastudio"
	"github.com/metastudio-exporter/metastudio_exporter/refresh"
)

// KindTask is the refresher's kind of an import/export task (ShowTask, SearchTask).
const KindTask = "task"

// DefaultProject is the name of the one project that the config's top-level keys
// configure: the refresher's project and the project label of its series.
const DefaultProject = config.DefaultProjectName

// TaskAPI is the part of the MetaStudio client that reads tasks; tests pass a fake.
type TaskAPI interface {
	ShowTask(ctx context.Context, id string) (*metastudio.Task, error)
	SearchTask(ctx context.Context, p metastudio.SearchParams) (*metastudio.TaskPage, error)
}

// NewAPI makes a MetaStudio client the refresher's API: a task's answer is kept as its
// pre-rendered values (render.go), not as the decoded task.
func NewAPI(c TaskAPI) refresh.API { return api{c} }

type api struct{ c TaskAPI }

func (a api) Fetch(ctx context.Context, k refresh.Key) (refresh.Value, error) {
	if k.Kind != KindTask {
		return nil, fmt.Errorf("no API reads objects of kind %q", k.Kind)
	}
	t, err := a.c.ShowTask(ctx, k.ID)
	if err != nil {
		return nil, err
	}
	return newValues(t), nil
}

func (a api) Search(ctx context.Context, kind string, params any) (any, error) {
	p, ok := params.(metastudio.SearchParams)
	if kind != KindTask || !ok {
		return nil, fmt.Errorf("no API lists objects of kind %q with %T", kind, params)
	}
	return a.c.SearchTask(ctx, p)
}

// taskKey is the refresher's key of a task of project.
func taskKey(project, id string) refresh.Key {
	return refresh.Key{Project: project, Kind: KindTask, ID: id}
}
