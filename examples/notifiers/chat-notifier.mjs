// A complete notifier plugin: one line per event in a chat channel, through
// an incoming webhook (Mattermost, Slack, Rocket.Chat all take {"text": …}).
const icons = { info: ':white_check_mark:', warning: ':warning:', error: ':rotating_light:' };

export default {
  name: 'chat-notifier',
  apply(harbor) {
    harbor.notifiers.register('chat', {
      // The keys of a { type: chat, … } target besides type, name, on, servers, timeout, retries.
      schema: { type: 'object', properties: { url: { type: 'string' }, channel: { type: 'string' } }, required: ['url'] },
      create(options) {
        return {
          // Throw to report a failure (pgharbor retries it); stop when `signal` aborts.
          async send(event, signal) {
            const hint = event.error?.hint ? `\nHINT: ${event.error.hint}` : '';
            const text = `${icons[event.severity]} ${event.host}: ${event.summary}${hint}`;
            const response = await fetch(options.url, {
              method: 'POST',
              signal,
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ text, channel: options.channel }),
            });
            if (!response.ok) throw new Error(`chat webhook answered HTTP ${response.status}`);
          },
        };
      },
    });
  },
};
