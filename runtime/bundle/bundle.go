// Package bundle loads and validates an OCI bundle: the directory holding
// config.json and the container's root filesystem.
//
// Validation is runc's, not the runtime-spec's every MUST: it rejects what
// vxn cannot run or what runc itself refuses, names the config.json field at
// fault and says how to fix it, and ignores fields it does not know.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigFile is the name of the configuration file inside a bundle.
const ConfigFile = "config.json"

// ErrInvalid is wrapped by every error that Load and ValidateProcess return
// for a configuration at fault (as opposed to an I/O error).
var ErrInvalid = errors.New("invalid bundle")

// Bundle is a loaded, validated OCI bundle.
type Bundle struct {
	Dir    string      // absolute bundle directory
	Spec   *specs.Spec // the parsed config.json
	Rootfs string      // absolute, cleaned rootfs directory (root.path resolved against Dir)
}

// Load reads and validates dir/config.json. An error reading the file wraps
// the os error (errors.Is(err, fs.ErrNotExist) for a missing config.json);
// every other error wraps ErrInvalid and names the field at fault.
func Load(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	data, err := os.ReadFile(filepath.Join(abs, ConfigFile))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			// The directory is already in the prefix: name the file alone.
			err = &fs.PathError{Op: pe.Op, Path: ConfigFile, Err: pe.Err}
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("bundle %s: %w (is --bundle right?)", abs, err)
		}
		return nil, fmt.Errorf("bundle %s: %w", abs, err)
	}
	spec, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", abs, err)
	}
	b := &Bundle{Dir: abs, Spec: spec}
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("bundle %s: %s: %w", abs, ConfigFile, err)
	}
	return b, nil
}

// decode parses config.json, turning JSON errors into ones that give the
// line and column (and for a wrong type, the field) in the file.
func decode(data []byte) (*specs.Spec, error) {
	var spec specs.Spec
	err := json.Unmarshal(data, &spec)
	if err == nil {
		return &spec, nil
	}
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		offset    int64
		e         *fieldError
	)
	switch {
	case errors.As(err, &syntaxErr):
		offset = syntaxErr.Offset
		e = invalid("", err, "%s; fix the JSON", syntaxErr.Error())
	case errors.As(err, &typeErr):
		offset = typeErr.Offset
		field := typeErr.Field
		if field == "" {
			field = "(top level)"
		}
		e = invalid(field, err, "got a JSON %s, want %s; fix the JSON", typeErr.Value, typeErr.Type)
	default:
		return nil, fmt.Errorf("%s: %w", ConfigFile, invalid("", err, "%s", err.Error()))
	}
	line, col := position(data, offset)
	return nil, fmt.Errorf("%s:%d:%d: %w", ConfigFile, line, col, e)
}

// position turns a json error offset (bytes read when the error was found)
// into the 1-based line and column of the last byte read.
func position(data []byte, offset int64) (line, col int) {
	i := min(max(int(offset)-1, 0), len(data))
	before := data[:i]
	return bytes.Count(before, []byte("\n")) + 1, i - bytes.LastIndexByte(before, '\n')
}

// fieldError is a validation error: the config.json field at fault (in
// JSON notation, "process.rlimits[1].type"), what is wrong with it and what
// to do about it.
type fieldError struct {
	field string
	msg   string
	cause error // an underlying error, or nil
}

// invalid returns a fieldError for field with a formatted message.
func invalid(field string, cause error, format string, args ...any) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...), cause: cause}
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

func (e *fieldError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.cause}
}

// IsBind reports whether a mount is a bind mount (type "bind", or a
// "bind"/"rbind" option as runc accepts).
func IsBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}
