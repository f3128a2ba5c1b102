package tokenapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
)

// Path is the collection's path.
const Path = "/api/mesh/v1/tokens"

// Tokens is what the API changes (an *auth.Authenticator).
type Tokens interface {
	Tokens() []auth.TokenInfo
	CreateToken(name string, role auth.Role) (string, auth.TokenInfo, error)
	RevokeToken(name string) (auth.TokenInfo, error)
}

// recorder appends to the audit log (an *audit.Log).
type recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// API serves the token routes.
type API struct {
	tokens Tokens
	audit  recorder
	logger *slog.Logger
}

// New returns the API; rec may be nil (no audit).
func New(tokens Tokens, rec recorder, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{tokens: tokens, audit: rec, logger: logger}
}

// RegisterRoutes adds the routes to mux.
func (a *API) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Path, a.list)
	mux.HandleFunc("POST "+Path, a.create)
	mux.HandleFunc("DELETE "+Path+"/{name}", a.revoke)
}

// ListResponse answers GET.
type ListResponse struct {
	Tokens []auth.TokenInfo `json:"tokens"`
}

// CreateRequest is the body of POST.
type CreateRequest struct {
	Name string    `json:"name"`
	Role auth.Role `json:"role"`
}

// CreateResponse answers POST: the token, shown this once.
type CreateResponse struct {
	auth.TokenInfo
	Token string `json:"token"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, ListResponse{Tokens: a.tokens.Tokens()})
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want JSON {"name": NAME, "role": ROLE}: ` + err.Error()})
		return
	}
	if !req.Role.Valid() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "role: " + string(req.Role) + " is not a role (want viewer, operator, admin, ingest or proxy)"})
		return
	}
	tok, info, err := a.tokens.CreateToken(req.Name, req.Role)
	a.record(r, "token.create", req.Name, "+ name: "+req.Name+"\n+ role: "+string(req.Role)+"\n", err)
	if err != nil {
		writeJSON(w, status(err), map[string]string{"error": err.Error()})
		return
	}
	a.logger.Info("token created", "name", info.Name, "role", info.Role, "by", auth.Who(r))
	writeJSON(w, http.StatusCreated, CreateResponse{TokenInfo: info, Token: tok})
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	info, err := a.tokens.RevokeToken(name)
	diff := ""
	if err == nil {
		diff = "- name: " + info.Name + "\n- role: " + string(info.Role) + "\n"
	}
	a.record(r, "token.revoke", name, diff, err)
	if err != nil {
		writeJSON(w, status(err), map[string]string{"error": err.Error()})
		return
	}
	a.logger.Info("token revoked", "name", info.Name, "role", info.Role, "by", auth.Who(r))
	writeJSON(w, http.StatusOK, info)
}

// record appends the change, or its refusal, to the audit log.
func (a *API) record(r *http.Request, action, name, diff string, err error) {
	if a.audit == nil {
		return
	}
	e := audit.Entry{Action: action, Targets: []string{"Token/" + name}, Diff: diff}
	if err != nil {
		e.Outcome = err.Error()
	}
	if aerr := a.audit.Record(r.Context(), e); aerr != nil {
		a.logger.Error("audit log append failed", "action", action, "err", aerr)
	}
}

func status(err error) int {
	switch {
	case errors.Is(err, auth.ErrTokenNotFound):
		return http.StatusNotFound
	case errors.Is(err, auth.ErrNameTaken), errors.Is(err, auth.ErrTokenInFile), errors.Is(err, auth.ErrAuthOff):
		return http.StatusConflict
	case errors.Is(err, auth.ErrStoreWrite):
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest // a bad name
}
