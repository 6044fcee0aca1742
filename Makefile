# todos-api: every command a developer or operator needs. `make help` lists them.
# Each target installs dependencies first when node_modules is missing or older than
# package.json / package-lock.json, so a fresh clone needs only Node.js and npm.

SHELL := /bin/bash
.DEFAULT_GOAL := help
TSX := node --import tsx

.PHONY: help deps dev test typecheck build start migrate migrate-down migration migrate-status \
        migrate-accept migrate-forget lint-migrations seed user resetdb psql up up-scaled up-ha ha ha-failover down logs bench bench-versus bench-scale clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# npm writes node_modules/.package-lock.json on every install: its age tells staleness.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json ## Install dependencies when missing or stale

dev: deps ## Run the service: embedded PostgreSQL unless configured, migrations, demo data if empty, no token needed (AUTH_MODE=local), reload on change, pretty logs
	LOG_PRETTY=$${LOG_PRETTY:-true} SEED_ON_START=$${SEED_ON_START:-if-empty} AUTH_MODE=$${AUTH_MODE:-local} $(TSX) src/dev/run.ts

test: deps ## Type-check and run the whole tap suite against a real PostgreSQL; prints how long it took
	@start=$$(date +%s); npm test; status=$$?; echo "make test: $$(( $$(date +%s) - start )) s"; exit $$status

typecheck: deps ## Type-check only
	npm run typecheck

build: deps ## Compile to dist/ (npm run build)
	npm run build

start: build ## Build, then run dist/server.js with the image's start command; settings from .env and the environment (NODE_ENV=development unless set)
	node --max-semi-space-size=8 --heap-growing-percent=100 --v8-pool-size=2 dist/server.js

migrate: deps ## Apply all pending migrations; dry=1 prints their SQL and changes nothing; baseline=NNNN adopts a database made without migrations
	$(TSX) src/cli/migrate.ts up $(if $(filter 1 true yes,$(dry)),--dry-run) $(if $(baseline),--baseline "$(baseline)")

migrate-down: deps ## Revert the last applied migration
	$(TSX) src/cli/migrate.ts down

migrate-status: deps ## Every migration: applied, pending, CHANGED or MISSING (scripts: npm run -s migrate:status exits 0 up to date, 3 pending, 4 drift)
	@$(TSX) src/cli/migrate.ts status

migrate-accept: deps ## A changed migration file: record it as it is now (the database matches it): make migrate-accept name=0003
	@if [ -z "$(name)" ]; then echo "usage: make migrate-accept name=0003" >&2; exit 2; fi
	$(TSX) src/cli/migrate.ts accept "$(name)"

migrate-forget: deps ## A migration whose file is gone: no longer record it as applied: make migrate-forget name=0006
	@if [ -z "$(name)" ]; then echo "usage: make migrate-forget name=0006" >&2; exit 2; fi
	$(TSX) src/cli/migrate.ts forget "$(name)"

migration: deps ## Create the next numbered migration: make migration name=add_x
	@if [ -z "$(name)" ]; then echo "usage: make migration name=add_something" >&2; exit 2; fi
	$(TSX) src/cli/migrate.ts create "$(name)"

lint-migrations: deps ## squawk over the Up part of every migration (make test runs it too); see src/dev/lint-migrations.ts
	$(TSX) src/dev/lint-migrations.ts

seed: deps ## Fill the database with demo todos and cats (idempotent: a second run adds nothing)
	$(TSX) src/cli/seed.ts

user: deps ## Create a user and print a first token (only the token on stdout): make user email=ada@example.com name=Ada
	@if [ -z "$(email)" ] || [ -z "$(name)" ]; then echo "usage: make user email=ada@example.com name=Ada" >&2; exit 2; fi
	@$(TSX) src/cli/users.ts create --email "$(email)" --name "$(name)"

resetdb: deps ## Revert every migration and migrate again; seed=1 also seeds; refuses production unless FORCE=1
	$(TSX) src/cli/resetdb.ts $(if $(filter 1 true yes,$(seed)),--seed) $(if $(filter 1 true yes,$(FORCE)),--force)

psql: deps ## Open psql on the configured database
	$(TSX) src/cli/psql.ts

up: ## Start PostgreSQL and the API in containers (docker compose)
	docker compose up --detach --build --wait

# compose.scaled.yaml resets the API's ports with `!reset` (Docker Compose 2.24+), and
# compose.ha.yaml replaces dependencies with `!override` (2.24.4+); an older Compose stops
# with a YAML error that does not say so.
define need_compose
	@found=$$(docker compose version --short 2>/dev/null | sed 's/^v//'); \
	if [ -z "$$found" ] || [ "$$(printf '%s\n%s\n' '$(1)' "$$found" | sort -V | head -n 1)" != '$(1)' ]; then \
	  echo "$(2) needs Docker Compose v2 $(1) or later (found: $${found:-none}): see README.md, Scaling out" >&2; exit 1; \
	fi
endef

up-scaled: ## Start the scaled-out stack: nginx, PgBouncer, replicas=2 API replicas (compose.scaled.yaml; needs Docker Compose 2.24+)
	$(call need_compose,2.24.0,compose.scaled.yaml)
	docker compose -f compose.yaml -f compose.scaled.yaml up --detach --build --wait --scale api=$(or $(replicas),2)

up-ha: ## The scaled-out stack on two PostgreSQL nodes under Patroni, etcd and HAProxy (compose.ha.yaml; Docker Compose 2.24.4+)
	$(call need_compose,2.24.4,compose.ha.yaml)
	docker compose -f compose.yaml -f compose.scaled.yaml -f compose.ha.yaml up --detach --build --wait --scale api=$(or $(replicas),2)

ha: deps ## The failover stack without containers: etcd, two PostgreSQL nodes under Patroni, HAProxy (Debian packages, installed when missing), and the service through HAProxy; Ctrl-C throws it away
	LOG_PRETTY=$${LOG_PRETTY:-true} SEED_ON_START=$${SEED_ON_START:-if-empty} AUTH_MODE=$${AUTH_MODE:-local} $(TSX) src/dev/ha.ts

ha-failover: deps ## Kill the primary of the running `make ha` stack (SIGKILL to its postmaster) and time the way back
	$(TSX) src/dev/ha.ts failover

down: ## Stop the containers (the database volume is kept)
	docker compose down

logs: ## Follow the containers' logs
	docker compose logs --follow

bench: deps ## Load benchmarks: the service against the bare node:http + pg floor, the price of metrics and tracing, push to 2 000 streams and sync paging, overload with and without shedding, then the scaled-out shapes (about 12 min)
	$(TSX) bench/run.ts
	$(TSX) bench/observability.ts --no-build
	$(TSX) bench/sync.ts --no-build
	$(TSX) bench/overload.ts --no-build
	$(TSX) bench/scale.ts

bench-versus: deps ## This build against another checkout's, side by side with the floor: make bench-versus other=../earlier (a git worktree, built)
	@if [ -z "$(other)" ]; then echo "usage: make bench-versus other=<checkout>" >&2; exit 2; fi
	BENCH_OTHER="$(other)" $(TSX) bench/versus.ts

bench-scale: deps ## Only the scaled-out shapes: direct vs PgBouncer, nginx to one vs two replicas, WEB_CONCURRENCY=2 (about 2 min)
	$(TSX) bench/scale.ts --build

clean: ## Remove build output and test artefacts (not the database in .data/)
	rm -rf dist .tap
