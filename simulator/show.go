package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// lookup returns the task's JSON object (an object or a fixedTask) at now, or nil.
func (s *Server) lookup(id string, now time.Time) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookupLocked(id, now)
}

func (s *Server) lookupLocked(id string, now time.Time) any {
	if t, ok := s.seeded[id]; ok {
		return t.render(now)
	}
	if f, ok := s.fixed[id]; ok {
		return f // never modified after SetTask stored it
	}
	return nil
}

func (s *Server) showTask(w http.ResponseWriter, reqID, id string) {
	task := s.lookup(id, s.now())
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
