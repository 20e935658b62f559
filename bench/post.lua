-- wrk: POST a 1 KB JSON body, as Replay does.
wrk.method = "POST"
wrk.body = '{"ver":1,"info":{"appUpdateChannel":"release"},"pad":"' .. string.rep("x", 970) .. '"}'
wrk.headers["Content-Type"] = "application/json"
