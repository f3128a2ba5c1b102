package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/rollout/judge"
	"github.com/meshscope/meshscope/control/store"
)

// Phases of a rollout.
const (
	PhaseProgressing = "progressing"
	PhasePaused      = "paused" // by an operator
	PhasePromoted    = "promoted"
	PhaseRolledBack  = "rolled_back"
	PhaseAborted     = "aborted"
)

// terminal reports whether a phase is final.
func terminal(phase string) bool {
	return phase == PhasePromoted || phase == PhaseRolledBack || phase == PhaseAborted
}

// Event types.
const (
	EventStarted    = "started"
	EventAdvanced   = "advanced"
	EventHeld       = "held"
	EventFailed     = "failed" // a failed interval below the failure limit
	EventPaused     = "paused"
	EventResumed    = "resumed"
	EventPromoted   = "promoted"
	EventRolledBack = "rolled_back"
	EventAborted    = "aborted"
	EventError      = "error"
)

// Caps on what a state file keeps.
const (
	maxIntervals = 500
	maxEvents    = 500
)

// State is a rollout's durable state: what GET /rollouts/{name} answers.
type State struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Stable  string `json:"stable"`
	Canary  string `json:"canary"`
	// Generation is a hash of the document: a changed document starts a
	// new rollout.
	Generation string         `json:"generation"`
	Spec       policy.Rollout `json:"spec"`
	Phase      string         `json:"phase"`
	// Step is the index of the current step in Spec.Steps; Weight the
	// canary's current weight in percent.
	Step   int `json:"step"`
	Weight int `json:"weight"`
	// StepStarted is when the current step's weight was set;
	// IntervalStart when the interval being observed began.
	StepStarted   time.Time `json:"step_started"`
	IntervalStart time.Time `json:"interval_start"`
	// Failures counts failed intervals (rollback at Spec.FailureLimit).
	Failures int `json:"failures"`
	// Held says why the last interval did not advance ("" when it did).
	Held string `json:"held,omitempty"`
	// Route is the Route document the rollout edits; OriginalRoute what it
	// was before the rollout (nil when the rollout created it).
	Route         string           `json:"route"`
	OriginalRoute *policy.Document `json:"original_route,omitempty"`
	// DocumentGone is set when the Rollout document was deleted after the
	// rollout ended: applying it again starts a new rollout.
	DocumentGone bool       `json:"document_gone,omitempty"`
	Intervals    []Interval `json:"intervals"`
	Events       []Event    `json:"events"`
	Started      time.Time  `json:"started"`
	Updated      time.Time  `json:"updated"`
}

// Interval is one judged interval.
type Interval struct {
	Start  time.Time    `json:"start"`
	End    time.Time    `json:"end"`
	Step   int          `json:"step"`
	Weight int          `json:"weight"`
	Result judge.Result `json:"result"`
	// Budget is the SLO's remaining error budget in percent when gated.
	Budget *float64 `json:"budget_remaining,omitempty"`
	// Action is what the controller did: advanced, held, failed,
	// promoted, rolled_back.
	Action string `json:"action"`
	// DecisionSeconds is the time from the interval's end to the route
	// change it decided (advance, promotion, rollback); 0 when held.
	DecisionSeconds float64 `json:"decision_seconds,omitempty"`
}

// Event is one thing that happened, with the numbers behind it.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Step    int       `json:"step"`
	Weight  int       `json:"weight"`
	Message string    `json:"message"`
	Score   *float64  `json:"score,omitempty"`
	Who     string    `json:"who,omitempty"`
	// write is the route change the event reports, for the audit log.
	write *store.Result
}

// generation hashes a Rollout document.
func generation(d *policy.Document) string {
	b, _ := json.Marshal(d)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func (s *State) addEvent(e Event) {
	s.Events = append(s.Events, e)
	if len(s.Events) > maxEvents {
		s.Events = append([]Event(nil), s.Events[len(s.Events)-maxEvents:]...)
	}
}

func (s *State) addInterval(iv Interval) {
	s.Intervals = append(s.Intervals, iv)
	if len(s.Intervals) > maxIntervals {
		s.Intervals = append([]Interval(nil), s.Intervals[len(s.Intervals)-maxIntervals:]...)
	}
}

// StateStore keeps the rollouts' states, one JSON document per rollout
// name: files in the state directory by default, or a store the servers
// of a cluster share (control/etcdstate.Blobs).
type StateStore interface {
	Load() (map[string][]byte, error)
	Save(name string, b []byte) error
}

// decodeStates decodes what a StateStore holds; a damaged state is an
// error naming it.
func decodeStates(st StateStore) (map[string]*State, error) {
	raw, err := st.Load()
	if err != nil {
		return nil, err
	}
	out := map[string]*State{}
	for name, b := range raw {
		var s State
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("rollout state %s: %w (move it away to start over)", name, err)
		}
		if s.Name != name {
			return nil, fmt.Errorf("rollout state %s: holds rollout %q", name, s.Name)
		}
		out[s.Name] = &s
	}
	return out, nil
}

func encodeState(s *State) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return nil, fmt.Errorf("rollout %s: encoding state: %w", s.Name, err)
	}
	return b, nil
}

// files stores one JSON file per rollout in dir.
type files struct{ dir string }

func (f files) path(name string) string { return filepath.Join(f.dir, name+".json") }

// Load reads every state file.
func (f files) Load() (map[string][]byte, error) {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, fmt.Errorf("rollout state dir: %w", err)
	}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, fmt.Errorf("rollout state dir: %w", err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(f.dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("rollout state %s: %w", p, err)
		}
		out[strings.TrimSuffix(e.Name(), ".json")] = b
	}
	return out, nil
}

// Save writes a state durably: a temporary file, fsync, rename, fsync of
// dir.
func (f files) Save(name string, b []byte) error {
	tmp, err := os.CreateTemp(f.dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("rollout %s: %w", name, err)
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("rollout %s: writing state: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), f.path(name)); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("rollout %s: %w", name, err)
	}
	d, err := os.Open(f.dir)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("rollout %s: syncing state dir: %w", name, err)
	}
	return nil
}
