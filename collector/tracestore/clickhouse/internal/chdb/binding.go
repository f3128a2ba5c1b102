//go:build chdb

package chdb

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef void* (*connect_fn)(int, char**);
typedef void (*close_fn)(void*);
typedef void* (*query_n_fn)(void*, const char*, size_t, const char*, size_t);
typedef void* (*query_params_fn)(void*, const char*, const char*, const char* const*, const char* const*, size_t);
typedef char* (*buf_fn)(void*);
typedef size_t (*len_fn)(void*);
typedef const char* (*err_fn)(void*);
typedef void (*destroy_fn)(void*);
typedef void (*sig_fn)(int);

static void* lib;
static connect_fn p_connect;
static close_fn p_close;
static query_n_fn p_query_n;
static query_params_fn p_query_params;
static buf_fn p_buf;
static len_fn p_len;
static err_fn p_err;
static destroy_fn p_destroy;
static sig_fn p_sig;

// The Go runtime owns these signals; libchdb resets or replaces some of them
// (chdb_set_signal_handlers_enabled(0) resets the deadly ones to SIG_DFL).
static const int guarded[] = {SIGABRT, SIGSEGV, SIGILL, SIGBUS, SIGSYS, SIGFPE, SIGTSTP, SIGTRAP, SIGURG, SIGPROF, SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};
#define NGUARDED (sizeof(guarded)/sizeof(guarded[0]))
static struct sigaction saved[NGUARDED];

static void save_sigs(void) {
	for (size_t i = 0; i < NGUARDED; i++) sigaction(guarded[i], NULL, &saved[i]);
}
static void restore_sigs(void) {
	for (size_t i = 0; i < NGUARDED; i++) sigaction(guarded[i], &saved[i], NULL);
}

static const char* chdb_load(const char* path) {
	save_sigs();
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	restore_sigs();
	if (!lib) return dlerror();
	p_connect = (connect_fn)dlsym(lib, "chdb_connect");
	p_close = (close_fn)dlsym(lib, "chdb_close_conn");
	p_query_n = (query_n_fn)dlsym(lib, "chdb_query_n");
	p_query_params = (query_params_fn)dlsym(lib, "chdb_query_with_params");
	p_buf = (buf_fn)dlsym(lib, "chdb_result_buffer");
	p_len = (len_fn)dlsym(lib, "chdb_result_length");
	p_err = (err_fn)dlsym(lib, "chdb_result_error");
	p_destroy = (destroy_fn)dlsym(lib, "chdb_destroy_query_result");
	p_sig = (sig_fn)dlsym(lib, "chdb_set_signal_handlers_enabled");
	if (!p_connect || !p_close || !p_query_n || !p_query_params || !p_buf || !p_len || !p_err || !p_destroy)
		return "libchdb lacks one of chdb_connect, chdb_close_conn, chdb_query_n, chdb_query_with_params, chdb_result_buffer/length/error, chdb_destroy_query_result";
	if (p_sig) {
		save_sigs();
		p_sig(0);
		restore_sigs();
	}
	return NULL;
}

static void* chdb_do_connect(int argc, char** argv) {
	save_sigs();
	void* c = p_connect(argc, argv);
	restore_sigs();
	return c;
}
static void chdb_do_close(void* c) { p_close(c); }

// conn is a chdb_connection* as chdb_connect returns it; queries take *conn.
static void* chdb_do_query(void* conn, const char* q, size_t qlen, const char* f, size_t flen) {
	return p_query_n(*(void**)conn, q, qlen, f, flen);
}
static void* chdb_do_query_params(void* conn, const char* q, const char* f, const char* const* names, const char* const* values, size_t n) {
	return p_query_params(*(void**)conn, q, f, names, values, n);
}
static char* chdb_do_buf(void* r) { return p_buf(r); }
static size_t chdb_do_len(void* r) { return p_len(r); }
static const char* chdb_do_err(void* r) { return p_err(r); }
static void chdb_do_destroy(void* r) { p_destroy(r); }
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// libState is the process-wide library and engine: libchdb runs one engine
// per process with one storage path, so every Conn shares it.
var libState struct {
	mu     sync.Mutex
	loaded string // library path
	path   string // storage path of the open engine
	conn   unsafe.Pointer
	refs   int
}

// Conn is a connection to the process's in-process ClickHouse engine. It
// serializes statements (the engine runs one statement per connection at a
// time).
type Conn struct {
	mu     sync.Mutex
	closed bool
	columns
}

// Open loads libPath (libchdb.so) once per process and opens the engine on
// dataDir. Every later Open must name the same library and data directory
// while a Conn is open.
func Open(libPath, dataDir string) (*Conn, error) {
	libState.mu.Lock()
	defer libState.mu.Unlock()
	if libState.loaded == "" {
		cpath := C.CString(libPath)
		defer C.free(unsafe.Pointer(cpath))
		if msg := C.chdb_load(cpath); msg != nil {
			return nil, fmt.Errorf("load %s: %s", libPath, C.GoString(msg))
		}
		libState.loaded = libPath
	} else if libState.loaded != libPath {
		return nil, fmt.Errorf("libchdb already loaded from %s, not %s", libState.loaded, libPath)
	}
	if libState.refs > 0 && libState.path != dataDir {
		return nil, fmt.Errorf("chdb engine already open on %s, not %s", libState.path, dataDir)
	}
	if libState.refs == 0 {
		args := []string{"clickhouse", "--path=" + dataDir}
		argv := make([]*C.char, len(args))
		for i, a := range args {
			argv[i] = C.CString(a)
			defer C.free(unsafe.Pointer(argv[i]))
		}
		c := C.chdb_do_connect(C.int(len(args)), &argv[0])
		if c == nil {
			return nil, fmt.Errorf("chdb_connect(--path=%s) failed", dataDir)
		}
		libState.conn = c
		libState.path = dataDir
	}
	libState.refs++
	c := &Conn{}
	c.columns.q = c.queryRaw
	return c, nil
}

// Close releases the connection; the engine closes with the last one.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	libState.mu.Lock()
	defer libState.mu.Unlock()
	libState.refs--
	if libState.refs == 0 {
		C.chdb_do_close(libState.conn)
		libState.conn = nil
		libState.path = ""
	}
	return nil
}

var errClosed = errors.New("chdb connection closed")

// queryRaw runs one statement and returns its output in format.
func (c *Conn) queryRaw(query string, params map[string]string, format string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	libState.mu.Lock()
	conn := libState.conn
	libState.mu.Unlock()

	cq := C.CBytes([]byte(query))
	defer C.free(cq)
	cf := C.CString(format)
	defer C.free(unsafe.Pointer(cf))
	var res unsafe.Pointer
	if len(params) == 0 {
		res = C.chdb_do_query(conn, (*C.char)(cq), C.size_t(len(query)), cf, C.size_t(len(format)))
	} else {
		// chdb_query_with_params takes NUL-terminated text.
		cqz := C.CString(query)
		defer C.free(unsafe.Pointer(cqz))
		names := make([]*C.char, 0, len(params))
		values := make([]*C.char, 0, len(params))
		for k, v := range params {
			n, val := C.CString(k), C.CString(v)
			defer C.free(unsafe.Pointer(n))
			defer C.free(unsafe.Pointer(val))
			names = append(names, n)
			values = append(values, val)
		}
		cn := C.malloc(C.size_t(len(names)) * C.size_t(unsafe.Sizeof(uintptr(0))))
		cv := C.malloc(C.size_t(len(values)) * C.size_t(unsafe.Sizeof(uintptr(0))))
		defer C.free(cn)
		defer C.free(cv)
		copy(unsafe.Slice((**C.char)(cn), len(names)), names)
		copy(unsafe.Slice((**C.char)(cv), len(values)), values)
		res = C.chdb_do_query_params(conn, cqz, cf, (**C.char)(cn), (**C.char)(cv), C.size_t(len(names)))
	}
	if res == nil {
		return nil, errors.New("chdb query returned no result")
	}
	defer C.chdb_do_destroy(res)
	if msg := C.chdb_do_err(res); msg != nil {
		return nil, fmt.Errorf("clickhouse: %s", C.GoString(msg))
	}
	n := int(C.chdb_do_len(res))
	if n == 0 {
		return nil, nil
	}
	return C.GoBytes(unsafe.Pointer(C.chdb_do_buf(res)), C.int(n)), nil
}

// Exec implements chsql.Conn.
func (c *Conn) Exec(ctx context.Context, query string, params map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.columns.reset()
	_, err := c.queryRaw(query, params, "RowBinary")
	return err
}

// Query implements chsql.Conn.
func (c *Conn) Query(ctx context.Context, query string, params map[string]string) (chsql.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := c.queryRaw(query, params, "RowBinaryWithNamesAndTypes")
	if err != nil {
		return nil, err
	}
	return NewRows(out)
}

// Insert implements chsql.Conn.
func (c *Conn) Insert(ctx context.Context, insert string, rows [][]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := c.columns.encodeInsert(insert, rows)
	if err != nil {
		return err
	}
	// The rows go through a file: inline data after the statement is cut
	// by the engine's multi-statement splitter at some byte sequences
	// (an empty line), which RowBinary data contains.
	f, err := os.CreateTemp("", "meshscope-chdb-insert-*.bin")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	path := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(f.Name())
	_, err = c.queryRaw(insert+" FROM INFILE '"+path+"' FORMAT RowBinary", nil, "RowBinary")
	return err
}

var _ chsql.Conn = (*Conn)(nil)
