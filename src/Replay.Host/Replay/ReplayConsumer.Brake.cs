// --max-dead-letter-ratio carried out on the consuming thread. The core (DeadLetterBrake)
// keeps the window of the last finished records and decides when to hold, probe and let go;
// this feeds it finished jobs, turns it with the store interval, hands its hold to the one
// place pauses are decided (OwnedPartitions.Reconcile, through Backpressure.wantsPause),
// releases a hold when a new rules generation comes into force, and says what it does.
using Replay.Core;
using Replay.Host.Operating;

namespace Replay.Host.Replay;

public sealed partial class ReplayConsumer
{
    DeadLetterBrake.Window? _window;
    DeadLetterBrake.State? _brake;
    /// <summary>The rules generation in force when the hold began: a new one releases it.</summary>
    object? _rulesAtHold;

    void StartBrake()
    {
        if (_settings.DeadLetterBrake?.Value is not { } brake) return;
        _window = new DeadLetterBrake.Window(brake);
        _brake = DeadLetterBrake.initial(brake);
    }

    void ObserveForBrake(Consuming.RecordEnd end)
    {
        if (_window is { } window) DeadLetterBrake.observe(window, end.Conclusion);
    }

    /// <summary>One turn of the brake: hold, release or keep, as the core says.</summary>
    void TurnBrake()
    {
        if (_window is not { } window || _settings.DeadLetterBrake?.Value is not { } settings) return;
        var (finished, dead) = (window.Finished, window.DeadLettered);
        var (state, decision) = DeadLetterBrake.step(settings, _brake!, finished, dead, Environment.TickCount64);
        var rulesChanged = false;
        if (decision == DeadLetterBrake.Decision.Keep && state.IsHolding && _services.Rules?.Current is { } rules && !ReferenceEquals(rules, _rulesAtHold))
        {
            (state, decision) = DeadLetterBrake.release(state);
            rulesChanged = true;
        }
        _brake = state;
        switch (decision)
        {
            case DeadLetterBrake.Decision.Hold:
                _rulesAtHold = _services.Rules?.Current;
                var seconds = ((DeadLetterBrake.State.Holding)state).holdMs / 1000;
                var why = $"{dead} of the last {finished} records became dead letters ({100.0 * dead / finished:0.#}%, over --max-dead-letter-ratio {settings.MaxRatio:0.###})";
                _observer.Held = $"paused: {why}";
                _observer.HeldAgain();
                Say(Severity.Warn, $"consuming paused: {why}: the destination or the rules refuse what is sent. Nothing is lost: the records are " +
                    $"kept as dead letters (replay_dead_letters_total{{reason}} says why). Consuming resumes for a probe in {seconds} s, at once " +
                    "when the rules file brings a new generation, or on a restart; fix the cause, then redrive the dead letters",
                    "hold", dead, finished, seconds);
                break;
            case DeadLetterBrake.Decision.Release:
                window.Clear();
                _observer.Held = null;
                Say(Severity.Info, (rulesChanged ? "consuming resumes: a new rules generation came into force" : "consuming resumes for a probe")
                    + $" after a pause by --max-dead-letter-ratio; the next {settings.MinRecords} records decide whether it pauses again",
                    "release", dead, finished, 0);
                break;
            case DeadLetterBrake.Decision.Recovered:
                Say(Severity.Info, $"dead letters are back under --max-dead-letter-ratio {settings.MaxRatio:0.###} ({dead} of {finished} records since the probe began)",
                    "recovered", dead, finished, 0);
                break;
        }
        _owned.Hold = DeadLetterBrake.hold(state);
    }

    void Say(Severity severity, string text, string what, int dead, int finished, long holdSeconds)
    {
        if (_services.Log is OperatorLog log)
            log.Write(severity, text,
            [
                new("event", "dead_letter_brake"), new("brake", what), new("dead_letters", dead), new("records", finished),
                new("max_ratio", _settings.DeadLetterBrake!.Value.MaxRatio), new("hold_s", holdSeconds),
            ]);
        else _services.Log.WriteLine(text);
    }
}
