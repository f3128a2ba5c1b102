package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// Role is what a caller may do.
type Role string

// Roles.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
	RoleIngest   Role = "ingest"
	RoleProxy    Role = "proxy"
)

// Roles lists every role, for errors and help.
func Roles() []Role { return []Role{RoleViewer, RoleOperator, RoleAdmin, RoleIngest, RoleProxy} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	for _, k := range Roles() {
		if r == k {
			return true
		}
	}
	return false
}

// Permission is what a request needs.
type Permission int

// Permissions, from the request classification.
const (
	PermPublic Permission = iota // health checks, the UI's static files, login
	PermRead                     // every GET API, queries, /metrics
	PermWrite                    // mutating calls: apply, delete, rollback, guard and rollout actions
	PermAdmin                    // tokens, CA, reload
	PermIngest                   // OTLP and remote-write writers
	PermStream                   // the proxy control stream
	PermCert                     // a mesh certificate for a proxy
)

func (p Permission) String() string {
	return [...]string{"public", "read", "write", "admin", "ingest", "stream", "cert"}[p]
}

// Can reports whether role r holds permission p.
func (r Role) Can(p Permission) bool {
	switch p {
	case PermPublic:
		return true
	case PermRead:
		return r == RoleViewer || r == RoleOperator || r == RoleAdmin
	case PermWrite:
		return r == RoleOperator || r == RoleAdmin
	case PermAdmin:
		return r == RoleAdmin
	case PermIngest:
		return r == RoleIngest || r == RoleProxy || r == RoleOperator || r == RoleAdmin
	case PermStream, PermCert:
		return r == RoleProxy || r == RoleOperator || r == RoleAdmin
	}
	return false
}

// Token is one bearer token of the auth file. The file holds its SHA-256,
// never the token.
type Token struct {
	Name   string `yaml:"name"`
	Role   Role   `yaml:"role"`
	SHA256 string `yaml:"sha256"`
}

// User is one UI/API user with a bcrypt password hash.
type User struct {
	Name   string `yaml:"name"`
	Role   Role   `yaml:"role"`
	Bcrypt string `yaml:"bcrypt"`
}

// File is the --auth-file.
type File struct {
	Tokens []Token `yaml:"tokens"`
	Users  []User  `yaml:"users"`
}

var (
	hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)
	validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)
)

// ParseFile strictly decodes an auth file: unknown keys, bad roles, bad
// hashes and duplicate names are errors naming the key.
func ParseFile(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("auth file: want one YAML document")
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	return &f, nil
}

// LoadFile reads and parses an auth file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--auth-file: %w", err)
	}
	f, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("--auth-file %s: %w", path, err)
	}
	return f, nil
}

// Validate names the first bad key.
func (f *File) Validate() error {
	names := map[string]string{}
	for i, t := range f.Tokens {
		key := fmt.Sprintf("tokens[%d]", i)
		if !validName.MatchString(t.Name) {
			return fmt.Errorf("%s.name: %q must be 1-128 letters, digits or ._@+-", key, t.Name)
		}
		if prev, dup := names[t.Name]; dup {
			return fmt.Errorf("%s.name: %q is also %s", key, t.Name, prev)
		}
		names[t.Name] = key
		if !t.Role.Valid() {
			return fmt.Errorf("%s.role: %q is not a role (want one of %v)", key, t.Role, Roles())
		}
		if !hexSHA256.MatchString(t.SHA256) {
			return fmt.Errorf("%s.sha256: want 64 lowercase hex digits (the SHA-256 of the token; `meshscope token create` prints it)", key)
		}
	}
	for i, u := range f.Users {
		key := fmt.Sprintf("users[%d]", i)
		if !validName.MatchString(u.Name) {
			return fmt.Errorf("%s.name: %q must be 1-128 letters, digits or ._@+-", key, u.Name)
		}
		if prev, dup := names[u.Name]; dup {
			return fmt.Errorf("%s.name: %q is also %s", key, u.Name, prev)
		}
		names[u.Name] = key
		if !u.Role.Valid() {
			return fmt.Errorf("%s.role: %q is not a role (want one of %v)", key, u.Role, Roles())
		}
		if u.Role == RoleIngest || u.Role == RoleProxy {
			return fmt.Errorf("%s.role: %q is for tokens of machines, not users", key, u.Role)
		}
		if _, err := bcrypt.Cost([]byte(u.Bcrypt)); err != nil {
			return fmt.Errorf("%s.bcrypt: not a bcrypt hash (%v); make one with `meshscope user hash` or `htpasswd -nbBC 10 '' PASSWORD`", key, err)
		}
	}
	return nil
}

// TokenPrefix starts every generated token (so scanners can spot leaks).
const TokenPrefix = "msk_"

// NewToken returns a random token (256 bits).
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashToken is the hex SHA-256 of a token, as the auth file holds it.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// ParseToken checks a presented or read token: printable ASCII without
// spaces, 16 to 512 bytes.
func ParseToken(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 16 || len(s) > 512 {
		return "", fmt.Errorf("token: want 16 to 512 characters, got %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return "", fmt.Errorf("token: character %d is not printable ASCII", i)
		}
	}
	return s, nil
}

// ReadTokenFile reads a token from a file (as --token-file).
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	t, err := ParseToken(string(b))
	if err != nil {
		return "", fmt.Errorf("--token-file %s: %w", path, err)
	}
	return t, nil
}

// TokenLine is the auth-file line of a token.
func TokenLine(name string, role Role, token string) string {
	return fmt.Sprintf("  - {name: %s, role: %s, sha256: %s}", name, role, HashToken(token))
}

// HashPassword makes a bcrypt hash for a users entry.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hashing the password: %w", err)
	}
	return string(h), nil
}
