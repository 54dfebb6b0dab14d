# traceport — make targets. `make test` is the README's test command and what CI runs.
GO ?= go
FUZZTIME ?= 60s

.PHONY: build run test vet unit e2e deploy-test fuzz bench bench-compare image jaeger clean

# The exact build line; the Dockerfile runs the same one (checked by deploy/'s test).
build:
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/traceport ./cmd/traceport

run: build
	./bin/traceport

# Everything CI checks: formatting, vet, unit tests with fuzz seed corpora,
# the end-to-end suite against a real Jaeger (built on first use), deploy/ validation.
test: vet
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -count=1 -run 'Latency' ./receiver/ # timing tests skip under -race: its cost would swamp them
	cd deploy && $(GO) test -count=1 -timeout 30m ./...

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e:
	$(GO) test -count=1 -v ./e2e/

deploy-test:
	cd deploy && $(GO) test -count=1 ./...

jaeger:
	./scripts/build-jaeger.sh

# Longer fuzzing of every decoder and the one-port handler (FUZZTIME each).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./translate/ ./receiver/ ./exporter/

bench-compare:
	$(GO) run ./cmd/traceport-compare $(COMPARE_FLAGS)

image:
	docker build -t traceport:dev .

clean:
	rm -rf bin
