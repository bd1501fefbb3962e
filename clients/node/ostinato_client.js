#!/usr/bin/env node
// A client of the Ostinato gateway written from protos/ alone: @grpc/proto-loader reads
// protos/ostinato/v1/*.proto at start-up (no generated code), @grpc/grpc-js makes the calls.
//
//   npm ci
//   node ostinato_client.js --gateway 127.0.0.1:50051 --api-key KEY [--protos ../../protos]
//
// It runs, and prints one JSON report on stdout:
//   - an interactive program: StartProgram, a Call, three parallel Calls on threads of their
//     own with the first call as parent (fan-out), a join Call with the three as parents
//     (fan-in), EndProgram (its summary must count 5 calls completed);
//   - a declared DAG through RunProgram (outline -> two sections -> merge, templates);
//   - bad input, each of which must get its status code: an unknown program (NOT_FOUND), a
//     call without messages (INVALID_ARGUMENT), a bad API key (UNAUTHENTICATED), a duplicate
//     call id (ALREADY_EXISTS), an unknown parent (INVALID_ARGUMENT), a DAG with a cycle
//     (INVALID_ARGUMENT).
// Exit status 0 when every check passed, 1 when one failed, 2 for bad arguments.
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

function parseArgs(argv) {
  const args = {
    gateway: "127.0.0.1:50051",
    apiKey: "",
    protos: path.resolve(__dirname, "..", "..", "protos"),
    timeoutS: 30,
  };
  const names = { "--gateway": "gateway", "--api-key": "apiKey", "--protos": "protos", "--timeout-s": "timeoutS" };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) {
      throw new Error(`usage: ostinato_client.js [--gateway HOST:PORT] [--api-key KEY] [--protos DIR] [--timeout-s N]; got ${argv[i]}`);
    }
    args[name] = name === "timeoutS" ? Number(argv[i + 1]) : argv[i + 1];
  }
  return args;
}

function loadGateway(protosDir) {
  const definition = protoLoader.loadSync(["ostinato/v1/gateway.proto"], {
    includeDirs: [protosDir],
    keepCase: true, // field names as the .proto spells them: program_id, parent_call_ids
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true, // ProgramEvent.event names the field that is set
  });
  return grpc.loadPackageDefinition(definition).ostinato.v1.Gateway;
}

class Gateway {
  constructor(address, apiKey, timeoutS) {
    const Stub = Gateway.Stub;
    this.stub = new Stub(address, grpc.credentials.createInsecure());
    this.apiKey = apiKey;
    this.timeoutS = timeoutS;
  }

  metadata(apiKey = this.apiKey) {
    const md = new grpc.Metadata();
    if (apiKey) md.set("authorization", `Bearer ${apiKey}`);
    return md;
  }

  options() {
    return { deadline: Date.now() + this.timeoutS * 1000 };
  }

  unary(method, request, apiKey) {
    return new Promise((resolve, reject) => {
      this.stub[method](request, this.metadata(apiKey), this.options(), (err, response) =>
        err ? reject(err) : resolve(response));
    });
  }

  // A server stream, collected: resolves with every message once the stream ends OK.
  stream(method, request, apiKey) {
    return new Promise((resolve, reject) => {
      const messages = [];
      const call = this.stub[method](request, this.metadata(apiKey), this.options());
      call.on("data", (m) => messages.push(m));
      call.on("error", reject);
      call.on("end", () => resolve(messages));
    });
  }

  startProgram(options = {}) {
    return this.unary("StartProgram", { options });
  }

  // One LLM call; resolves with its CallResult (the last chunk's) and the streamed text.
  async call(programId, spec, apiKey) {
    const chunks = await this.stream("Call", { program_id: programId, call: spec }, apiKey);
    const last = chunks[chunks.length - 1];
    if (!last || !last.result) throw new Error("the Call stream ended without a result");
    return { ...last.result, streamed: chunks.map((c) => c.delta).join("") };
  }

  endProgram(programId) {
    return this.unary("EndProgram", { program_id: programId });
  }

  runProgram(nodes, options = {}) {
    return this.stream("RunProgram", { options, nodes });
  }
}

function userSpec(text, extra = {}) {
  return { messages: [{ role: "user", content: text }], sampling: { max_new_tokens: 16 }, ...extra };
}

function callSummary(r) {
  return {
    call_id: r.call_id,
    worker_id: r.worker_id,
    finish_reason: r.finish_reason,
    prompt_tokens: r.usage.prompt_tokens,
    completion_tokens: r.usage.completion_tokens,
    cached_tokens: r.usage.cached_tokens,
    simulated: r.simulated,
    text_chars: r.text.length,
  };
}

class Checks {
  constructor() {
    this.list = [];
  }

  check(name, ok, detail = undefined) {
    this.list.push(detail === undefined ? { name, ok: Boolean(ok) } : { name, ok: Boolean(ok), detail });
    return ok;
  }

  get ok() {
    return this.list.every((c) => c.ok);
  }
}

async function interactive(gw, checks) {
  const { program_id: programId, tenant } = await gw.startProgram({ program_class: "node-client" });
  checks.check("StartProgram returns a program id", programId);
  const first = await gw.call(programId, userSpec("Plan a day in Lyon."));
  checks.check("the first call returns text and usage", first.text && first.usage.completion_tokens > 0);
  checks.check("the streamed deltas add up to the result's text", first.streamed === first.text);
  // fan-out: three calls at once, each on its own thread, each a child of the first call
  const branches = await Promise.all([0, 1, 2].map((i) => gw.call(programId, userSpec(
    `Branch ${i}: expand one part of the plan.`,
    { thread_id: `branch-${i}`, parent_call_ids: [first.call_id] }))));
  checks.check("the three branches ran as three distinct calls",
    new Set(branches.map((b) => b.call_id)).size === 3);
  // fan-in: one call that depends on the three branches
  const join = await gw.call(programId, userSpec("Merge the three branches.",
    { parent_call_ids: branches.map((b) => b.call_id) }));
  checks.check("the join returns text", join.text.length > 0);
  const { summary } = await gw.endProgram(programId);
  checks.check("EndProgram counts 5 calls completed", summary.calls_completed === 5,
    { calls_completed: summary.calls_completed, calls_failed: summary.calls_failed });
  return {
    program_id: programId,
    tenant,
    first: callSummary(first),
    branches: branches.map((b, i) => ({ ...callSummary(b), thread_id: `branch-${i}`, parent_call_ids: [first.call_id] })),
    join: { ...callSummary(join), parent_call_ids: branches.map((b) => b.call_id) },
    summary,
  };
}

async function declared(gw, checks) {
  const node = (id, dependsOn, prompt) => ({
    id, depends_on: dependsOn, call: { prompt, sampling: { max_new_tokens: 12 } },
  });
  const nodes = [
    node("outline", [], "Outline a short guide to Lyon."),
    node("history", ["outline"], "Write the history section of: {{outline}}"),
    node("food", ["outline"], "Write the food section of: {{outline}}"),
    node("merge", ["history", "food"], "Merge: {{history}} | {{food}}"),
  ];
  const events = await gw.runProgram(nodes, { program_class: "node-client-dag" });
  const finished = events.filter((e) => e.event === "node_finished").map((e) => e.node_finished.node_id);
  const started = events.filter((e) => e.event === "node_started").map((e) => e.node_started.node_id);
  const last = events[events.length - 1];
  const summary = last && last.event === "program_finished" ? last.program_finished : null;
  checks.check("every DAG node finished", JSON.stringify([...finished].sort()) ===
    JSON.stringify(nodes.map((n) => n.id).sort()), finished);
  checks.check("the DAG's merge node finished last", finished[finished.length - 1] === "merge");
  checks.check("RunProgram ends with the program's summary, 4 calls completed",
    summary && summary.calls_completed === 4);
  return {
    program_id: events.length ? events[0].program_id : "",
    nodes: nodes.map((n) => ({ id: n.id, depends_on: n.depends_on })),
    started,
    finished,
    summary,
  };
}

// Each case must fail with its status code; anything else (success included) is a failure.
async function badInput(gw, checks) {
  const { program_id: programId } = await gw.startProgram();
  const cases = [
    ["unknown program", "NOT_FOUND", () => gw.call("no-such-program", userSpec("hi"))],
    ["no messages", "INVALID_ARGUMENT", () => gw.call(programId, { sampling: { max_new_tokens: 4 } })],
    ["bad api key", "UNAUTHENTICATED", () => gw.call(programId, userSpec("hi"), "not-a-real-key")],
    ["duplicate call id", "ALREADY_EXISTS", async () => {
      await gw.call(programId, userSpec("first", { call_id: "dup" }));
      return gw.call(programId, userSpec("second", { call_id: "dup" }));
    }],
    ["unknown parent", "INVALID_ARGUMENT", () => gw.call(programId, userSpec("hi", { parent_call_ids: ["ghost"] }))],
    ["dag with a cycle", "INVALID_ARGUMENT", () => gw.runProgram([
      { id: "a", depends_on: ["b"], call: { prompt: "x" } },
      { id: "b", depends_on: ["a"], call: { prompt: "y" } },
    ])],
  ];
  const results = [];
  for (const [name, expected, run] of cases) {
    let got;
    let details = "";
    try {
      await run();
      got = "OK";
    } catch (err) {
      if (err.code === undefined) throw err; // not a gRPC status: a bug here, not a finding
      got = STATUS_NAMES[err.code] || String(err.code);
      details = err.details || "";
    }
    const ok = got === expected && details.length > 0;
    checks.check(`${name} -> ${expected}`, ok);
    results.push({ case: name, expected, got, details, ok });
  }
  await gw.endProgram(programId);
  return results;
}

async function main(argv) {
  let args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  Gateway.Stub = loadGateway(args.protos);
  const gw = new Gateway(args.gateway, args.apiKey, args.timeoutS);
  const checks = new Checks();
  const report = { gateway: args.gateway, protos: args.protos, grpc_js: require("@grpc/grpc-js/package.json").version };
  try {
    report.interactive = await interactive(gw, checks);
    report.dag = await declared(gw, checks);
    report.bad_input = await badInput(gw, checks);
  } catch (err) {
    checks.check("no unexpected error", false, {
      code: err.code === undefined ? null : STATUS_NAMES[err.code], message: err.details || err.message,
    });
  } finally {
    gw.stub.close();
  }
  report.checks = checks.list;
  report.ok = checks.ok;
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  return report.ok ? 0 : 1;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
