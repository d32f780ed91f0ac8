package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// lookup returns the JSON object (an object or a fixedTask) of p's task id at now, or nil.
func (s *Server) lookup(p *project, id string, now time.Time) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookupLocked(p, id, now)
}

func (s *Server) lookupLocked(p *project, id string, now time.Time) any {
	if t, ok := p.seeded[id]; ok {
		return t.render(now)
	}
	if f, ok := p.fixed[id]; ok {
		return f // never modified after SetTask stored it
	}
	return nil
}

func (s *Server) showTask(w http.ResponseWriter, reqID string, p *project, id string) {
	task := s.lookup(p, id, s.now())
	if task == nil {
		s.writeJSONError(w, reqID, http.StatusBadRequest, CodeInvalidParam,
			fmt.Sprintf("Invalid parameter: task %s does not exist.", id))
		return
	}
	b, err := json.Marshal(task)
	if err != nil {
		s.writeJSONError(w, reqID, http.StatusInternalServerError, CodeInternal, msgInternal)
		return
	}
	s.writeBody(w, http.StatusOK, contentMSS, b)
}
