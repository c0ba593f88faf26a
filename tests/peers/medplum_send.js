// Sends HL7 v2 messages to an MLLP listener with @medplum/hl7's client and prints what that
// client makes of each answer, as JSON: [{msa1, msa2, err3} | {error}], one per message.
// Usage: node medplum_send.js <host> <port> < messages.json   (a JSON list of base64 strings)
"use strict";
const { Hl7Client } = require("@medplum/hl7");
// The @medplum/core that @medplum/hl7 itself uses (4.x, nested under it): the package's own
// core is the validator's 5.x (validate.mjs), whose import needs a WebSocket global.
const { Hl7Message } = require(require.resolve("@medplum/core", { paths: [require.resolve("@medplum/hl7")] }));

async function main() {
  const [host, port] = process.argv.slice(2);
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const messages = JSON.parse(Buffer.concat(chunks).toString("utf-8"));
  // latin1 both ways: the bytes sent are the fixture's own (an invalid UTF-8 byte included).
  const client = new Hl7Client({ host, port: Number(port), encoding: "latin1" });
  const connection = await client.connect();
  const results = [];
  for (const encoded of messages) {
    const text = Buffer.from(encoded, "base64").toString("latin1");
    try {
      const message = Hl7Message.parse(text);
      // The client's own request/response matching: MSH-10 against the answer's MSA-2.
      const answer = await connection.sendAndWait(message, { timeoutMs: 10000 });
      const msa = answer.getSegment("MSA");
      const err = answer.getSegment("ERR");
      results.push({
        msa1: msa?.getField(1)?.toString() ?? null,
        msa2: msa?.getField(2)?.toString() ?? null,
        version: answer.getSegment("MSH")?.getField(12)?.toString() ?? null,
        err: err ? err.toString() : null,
      });
    } catch (error) {
      results.push({ error: String(error?.message ?? error) });
    }
  }
  await client.close();
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error?.stack ?? error) + "\n");
  process.exit(1);
});
