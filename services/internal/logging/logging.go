// Package logging builds the zap logger every service uses, with stable keys
// (ts, level, logger, msg, service) and JSON or console output.
package logging

import (
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config is the `log` section.
type Config struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json (production) or console (development).
	Format string `yaml:"format"`
}

// Default logs info as JSON.
func Default() Config { return Config{Level: "info", Format: "json"} }

// Validate reports every problem in the section.
func (c Config) Validate() error {
	var errs []error
	// dpanic, panic and fatal parse as zap levels but would silence every
	// warning and error: not a level a service runs at.
	if l, err := zapcore.ParseLevel(c.Level); err != nil || l > zapcore.ErrorLevel {
		errs = append(errs, fmt.Errorf("level: %q is not one of debug, info, warn, error", c.Level))
	}
	if c.Format != "json" && c.Format != "console" {
		errs = append(errs, fmt.Errorf("format: %q is not json or console", c.Format))
	}
	return errors.Join(errs...)
}

// New returns a logger for service writing to stderr.
func New(c Config, service string) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", c.Level, err)
	}
	enc := zapcore.EncoderConfig{
		TimeKey:        "ts",
		LevelKey:       "level",
		NameKey:        "logger",
		CallerKey:      "caller",
		MessageKey:     "msg",
		StacktraceKey:  "stacktrace",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
	}
	var encoder zapcore.Encoder
	if c.Format == "console" {
		enc.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	core := zapcore.NewCore(encoder, zapcore.Lock(os.Stderr), level)
	return zap.New(core, zap.AddStacktrace(zapcore.ErrorLevel)).With(zap.String("service", service)), nil
}
