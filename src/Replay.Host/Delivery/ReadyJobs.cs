// The jobs the engine has made ready, and the workers waiting for one. Everything but the
// wait itself happens under the engines' lock, which the engine's Ready effect and a worker
// finishing a job already hold: a channel here took a second lock per job on both the
// consuming and the sending thread, and they contended for it.
using Replay.Core;

namespace Replay.Host.Delivery;

sealed class ReadyJobs
{
    readonly Queue<Job> _jobs = new();
    readonly Stack<TaskCompletionSource> _idle = new();
    bool _closed;

    /// <summary>Under the lock: a job is ready; one waiting worker is woken (off this thread).</summary>
    public void Add(Job job)
    {
        _jobs.Enqueue(job);
        if (_idle.TryPop(out var worker)) worker.TrySetResult();
    }

    /// <summary>Under the lock: the next ready job; or null and, unless closed, a task that
    /// completes once another may be there.</summary>
    public Job? Take(out Task? wait)
    {
        wait = null;
        if (_jobs.TryDequeue(out var job)) return job;
        if (_closed) return null;
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _idle.Push(waiting);
        wait = waiting.Task;
        return null;
    }

    /// <summary>Under the lock: the next ready job, if any; never waits.</summary>
    public bool TryTake(out Job job) => _jobs.TryDequeue(out job!);

    /// <summary>Under the lock: no more jobs will come; every waiting worker is woken.</summary>
    public void Close()
    {
        _closed = true;
        while (_idle.TryPop(out var worker)) worker.TrySetResult();
    }
}
