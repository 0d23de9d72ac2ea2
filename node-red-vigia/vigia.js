'use strict';

/**
 * The Vigía nodes: daemon events into flows, flow events out to the call center, outputs, the plate hotlist and
 * the daemon's status. All of them talk to the daemon through the bridge that the embedding runtime puts in the
 * settings (RED.settings.vigia); this module never reaches the hardware or the outbox itself.
 */

/** The event types a flow may emit (the daemon checks it again). */
const FLOW_EVENT_TYPE = /^flow\.[a-z0-9_]+(\.[a-z0-9_]+)*$/;
const NOT_IN_VIGIA = 'not running inside Vigía';
/** Longest status polling interval: setInterval misbehaves past 2^31 ms, and a day is plenty. */
const MAX_INTERVAL_S = 86_400;

module.exports = (RED) => {
  /** How the bridge knows which node is asking (its logs, its per-node rate limits). */
  const ref = (node) => ({ id: node.id, type: node.type, name: node.name || '' });

  /** HH:MM:SS, enough to tell in the editor when a node last did something. */
  const clock = () => new Date().toTimeString().slice(0, 8);

  /** 'motion.*, alarm.panic' or ['motion.*'] -> ['motion.*', 'alarm.panic']; hand-written flows may use either. */
  const toList = (value) => (Array.isArray(value) ? value : String(value || '').split(/[\s,]+/)).map((s) => String(s).trim()).filter(Boolean);

  /** An Error a Catch node can route on: Node-RED copies an own `code` into msg.error.code. */
  function refusal(code, message) {
    const err = new Error(message);
    err.code = code;
    return err;
  }

  const codeOf = (err) => (err && typeof err.code === 'string' ? err.code : 'error');
  const asError = (err) => (err instanceof Error ? err : refusal('error', String(err)));

  /** Calls the bridge so that a synchronous throw ends up in the same rejection path as an asynchronous one. */
  const call = (fn) => new Promise((resolve) => resolve(fn()));

  /**
   * The bridge for a node being constructed, or null outside Vigía. It is read here rather than at module load so that
   * a runtime started without it still loads the palette; such a node shows why and refuses every message.
   */
  function bridgeFor(node) {
    const bridge = RED.settings.vigia;
    if (bridge) return bridge;
    node.status({ fill: 'red', shape: 'ring', text: NOT_IN_VIGIA });
    node.on('input', (_msg, _send, done) => done(refusal('unavailable', NOT_IN_VIGIA)));
    return null;
  }

  /** Event payloads are objects; a bare value (an inject's timestamp, a string) is wrapped so it is not lost. */
  function eventPayload(value) {
    if (value === undefined || value === null) return {};
    if (['string', 'number', 'boolean'].includes(typeof value) || Array.isArray(value)) return { value };
    // toString rather than a prototype check: objects made in a function node come from another VM context.
    if (Object.prototype.toString.call(value) === '[object Object]') return value;
    throw refusal('bad_event', 'the event payload must be an object, a string, a number or a boolean');
  }

  function VigiaInNode(config) {
    RED.nodes.createNode(this, config);
    const bridge = bridgeFor(this);
    if (!bridge) return;
    const filter = { types: toList(config.types), priorities: toList(config.priorities) };
    let unsubscribe = null;
    try {
      unsubscribe = bridge.subscribe(ref(this), filter, (event) => {
        // Each node gets its own copy: the bridge may hand the same event to several subscribers.
        const copy = RED.util.cloneMessage(event);
        this.send({ topic: copy.type, payload: copy.payload, event: copy });
        this.status({ fill: 'green', shape: 'dot', text: `${copy.type} ${clock()}` });
      });
      this.status({ fill: 'grey', shape: 'ring', text: 'waiting' });
    } catch (err) {
      this.status({ fill: 'red', shape: 'ring', text: codeOf(err) });
      this.error(`cannot subscribe: ${asError(err).message}`);
    }
    this.on('close', () => {
      if (unsubscribe) unsubscribe();
    });
  }

  function VigiaEventNode(config) {
    RED.nodes.createNode(this, config);
    const bridge = bridgeFor(this);
    if (!bridge) return;
    const payloadFrom = config.payloadFrom || 'payload';
    let refused = 0;
    if (config.eventType && !FLOW_EVENT_TYPE.test(config.eventType)) this.status({ fill: 'red', shape: 'ring', text: `bad type ${config.eventType}` });

    const refuse = (err, done) => {
      refused += 1;
      this.status({ fill: 'red', shape: 'ring', text: `refused ${refused} (${codeOf(err)})` });
      done(asError(err));
    };

    this.on('input', (msg, send, done) => {
      let draft;
      try {
        const type = config.eventType || msg.topic;
        if (typeof type !== 'string' || !FLOW_EVENT_TYPE.test(type)) {
          throw refusal('bad_event', `event type ${JSON.stringify(type)} must look like flow.name (lower case letters, digits, _ and dots)`);
        }
        draft = { type, priority: config.priority, payload: eventPayload(RED.util.getMessageProperty(msg, payloadFrom)) };
      } catch (err) {
        refuse(err, done);
        return;
      }
      call(() => bridge.emit(ref(this), draft))
        .then((result) => {
          msg.event = result;
          const tail = refused ? ` · refused ${refused}` : '';
          this.status({ fill: 'green', shape: 'dot', text: `${result.type} ${clock()}${tail}` });
          send(msg);
          done();
        })
        .catch((err) => refuse(err, done));
    });
  }

  /** The pattern a `vigia output` node plays for a message, in the bridge's (and output.set's) pattern language. */
  function patternFor(config, msg) {
    const forMs = Math.round(Number(config.forSeconds) * 1000);
    switch (config.pattern) {
      case 'on':
      case 'off':
        return config.pattern;
      case 'blink': {
        // duty is optional in the pattern language (the daemon's default); a blank field leaves it out.
        const duty = config.duty === undefined || config.duty === '' ? {} : { duty: Number(config.duty) };
        return { mode: 'blink', period_ms: Number(config.periodMs), ...duty, ...(forMs > 0 ? { for_ms: forMs } : {}) };
      }
      case 'pulse':
        return { mode: 'pulse', ms: Number(config.pulseMs) };
      case 'for':
        return { mode: 'on', for_ms: forMs };
      case 'msg':
        // true/false as well, so a switch or a dashboard toggle can drive an output directly.
        if (typeof msg.payload === 'boolean') return msg.payload ? 'on' : 'off';
        return msg.payload;
      default:
        throw refusal('bad_pattern', `unknown pattern preset ${JSON.stringify(config.pattern)}`);
    }
  }

  function VigiaOutputNode(config) {
    RED.nodes.createNode(this, config);
    const bridge = bridgeFor(this);
    if (!bridge) return;
    const known = bridge.info && Array.isArray(bridge.info.outputs) ? bridge.info.outputs.map((o) => o.name) : null;
    if (known && !known.includes(config.output)) this.status({ fill: 'red', shape: 'ring', text: `no output ${config.output || '(none)'}` });

    this.on('input', (msg, send, done) => {
      const fail = (err) => {
        this.status({ fill: 'red', shape: 'ring', text: codeOf(err) });
        done(asError(err));
      };
      let pattern;
      try {
        pattern = patternFor(config, msg);
      } catch (err) {
        fail(err);
        return;
      }
      call(() => bridge.output(ref(this), config.output, pattern))
        .then((result) => {
          this.status({ fill: result.value ? 'green' : 'grey', shape: 'dot', text: `${result.output} ${result.value ? 'on' : 'off'} ${clock()}` });
          msg.payload = result;
          send(msg);
          done();
        })
        .catch(fail);
    });
  }

  function VigiaHotlistNode(config) {
    RED.nodes.createNode(this, config);
    const bridge = bridgeFor(this);
    if (!bridge) return;
    const property = config.property || 'payload';
    const fuzzy = config.fuzzy === true;
    if (bridge.info && bridge.info.hotlist === false) this.status({ fill: 'grey', shape: 'ring', text: 'plate reading off' });

    this.on('input', (msg, send, done) => {
      const fail = (err) => {
        this.status({ fill: 'red', shape: 'ring', text: codeOf(err) });
        done(asError(err));
      };
      let plate;
      try {
        plate = RED.util.getMessageProperty(msg, property);
      } catch (err) {
        fail(err);
        return;
      }
      if (typeof plate === 'number') plate = String(plate);
      if (typeof plate !== 'string' || plate.trim() === '') {
        fail(refusal('bad_plate', `msg.${property} must hold the plate text`));
        return;
      }
      call(() => bridge.hotlist(ref(this), plate.trim(), fuzzy))
        .then((result) => {
          const matches = result.matches.length;
          // The plate itself stays out of the status: anyone with editor access would see every plate read.
          const text = matches ? `match (${matches}) ${clock()}` : `no match ${clock()}`;
          this.status({ fill: matches ? 'yellow' : 'green', shape: 'dot', text });
          msg.payload = result;
          msg.hit = matches > 0;
          send(msg.hit ? [msg, null] : [null, msg]);
          done();
        })
        .catch(fail);
    });
  }

  function VigiaStatusNode(config) {
    RED.nodes.createNode(this, config);
    const bridge = bridgeFor(this);
    if (!bridge) return;
    const interval = Number(config.interval || 0);

    const poll = () =>
      call(() => bridge.status(ref(this))).then(
        (summary) => {
          const { link, outbox } = summary;
          this.status({
            fill: link.connected ? 'green' : 'yellow',
            shape: link.connected ? 'dot' : 'ring',
            text: `link: ${link.state} · outbox ${outbox.depth}`,
          });
          return summary;
        },
        (err) => {
          this.status({ fill: 'red', shape: 'ring', text: codeOf(err) });
          throw err;
        },
      );

    this.on('input', (msg, send, done) => {
      poll()
        .then((summary) => {
          msg.payload = summary;
          send(msg);
          done();
        })
        .catch((err) => done(asError(err)));
    });

    if (interval === 0) return;
    if (!(interval >= 1 && interval <= MAX_INTERVAL_S)) {
      this.status({ fill: 'red', shape: 'ring', text: `bad interval ${config.interval}` });
      this.error(`interval must be 0 or 1 to ${MAX_INTERVAL_S} seconds, not ${config.interval}`);
      return;
    }
    let inFlight = false;
    let closed = false;
    let lastError = null;
    const tick = () => {
      // A status call slower than the interval must not pile up behind itself.
      if (inFlight) return;
      inFlight = true;
      poll()
        .then(
          (summary) => {
            lastError = null;
            if (!closed) this.send({ topic: 'status', payload: summary });
          },
          (err) => {
            // Logged once per distinct failure, not once per tick.
            const message = asError(err).message;
            if (message !== lastError && !closed) this.error(asError(err));
            lastError = message;
          },
        )
        .finally(() => {
          inFlight = false;
        });
    };
    // The first poll right after deploy (as an inject's "once" does), so the status shows without waiting an interval.
    const first = setTimeout(tick, 100);
    const timer = setInterval(tick, interval * 1000);
    this.on('close', () => {
      closed = true;
      clearTimeout(first);
      clearInterval(timer);
    });
  }

  RED.nodes.registerType('vigia in', VigiaInNode);
  RED.nodes.registerType('vigia event', VigiaEventNode);
  RED.nodes.registerType('vigia output', VigiaOutputNode);
  RED.nodes.registerType('vigia hotlist', VigiaHotlistNode);
  RED.nodes.registerType('vigia status', VigiaStatusNode);

  // The editor fills its dropdowns from this (outputs, priorities, event types); 'read' users may see it.
  RED.httpAdmin.get('/vigia/info', RED.auth.needsPermission('vigia.read'), (_req, res) => {
    const bridge = RED.settings.vigia;
    res.json(bridge ? bridge.info : { error: NOT_IN_VIGIA });
  });
};
