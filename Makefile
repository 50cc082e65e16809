# Convenience targets; the README's two commands work without make.
.PHONY: run test build fuzz

run:
	go run ./cmd/relay serve --config relay.example.yaml

test:
	./scripts/test.sh

build:
	CGO_ENABLED=0 go build -trimpath -o bin/relay ./cmd/relay

# Longer fuzzing than CI does.
fuzz:
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 5m ./strictjson/
	go test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime 5m ./providers/
