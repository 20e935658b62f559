namespace Replay.Host;

/// <summary>An expected failure carried as data: a value, or a message for the user.</summary>
public readonly record struct Result<T>(T? Value, string? Error)
{
    public bool IsOk => Error is null;
    public static Result<T> Ok(T value) => new(value, null);
    public static Result<T> Fail(string error) => new(default, error);
}
