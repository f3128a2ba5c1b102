// Package flagconfig gives both binaries one way to combine a YAML config
// file with command-line flags: defaults, then the file (strictly decoded:
// an unknown key is an error that names it), then every flag given on the
// command line, then Validate.
package flagconfig

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigFlag is the flag that names the YAML file.
const ConfigFlag = "config"

// Validator is implemented by configs that check themselves after merging.
type Validator interface {
	Validate() error
}

// Parse builds a T from defaults, the YAML file named by --config (if given)
// and args. bind defines the flags on fs, each bound to a field of cfg with
// that field's current value as default. Flags given on the command line win
// over the file; a repeated flag is applied as often as it was given.
// Positional arguments are an error. With -h/--help, Parse prints usage to
// output and returns flag.ErrHelp.
func Parse[T any](name string, args []string, defaults func() T, bind func(fs *flag.FlagSet, cfg *T), output io.Writer) (T, error) {
	cfg := defaults()
	var path string
	fs := newFlagSet(name, output, &path, &cfg, bind)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if path != "" {
		fileCfg := defaults()
		if err := LoadYAML(path, &fileCfg); err != nil {
			return cfg, err
		}
		// Apply the command line again, on top of the file.
		fs2 := newFlagSet(name, io.Discard, &path, &fileCfg, bind)
		if err := fs2.Parse(args); err != nil {
			return cfg, err
		}
		cfg = fileCfg
	}
	if v, ok := any(&cfg).(Validator); ok {
		if err := v.Validate(); err != nil {
			return cfg, fmt.Errorf("invalid configuration: %w", err)
		}
	}
	return cfg, nil
}

func newFlagSet[T any](name string, output io.Writer, path *string, cfg *T, bind func(*flag.FlagSet, *T)) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(path, ConfigFlag, "", "YAML config `file`; flags given on the command line override it")
	bind(fs, cfg)
	return fs
}

// LoadYAML decodes the file at path into dst, which holds the defaults. Keys
// that dst has no field for are rejected with their name and line. An empty
// file leaves dst unchanged.
func LoadYAML(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	if err := DecodeYAML(data, dst); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// DecodeYAML strictly decodes data into dst (see LoadYAML).
func DecodeYAML(data []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return errors.New(strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n  ", " "), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}
