/// Which pipelined connection takes a request (`--pipeline N`), as laws over generated pools and
/// as a run of a pool filling up and draining: never more connections than the concurrency
/// needs, never more than N requests on one while another has room, and the connection handing
/// out answers takes the requests begun meanwhile.
module Replay.Tests.PipeliningTests

open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core

let private pool: Gen<int * int * Pipelining.Pool> =
    gen {
        let! depth = Gen.choose (1, 8)
        let! most = Gen.choose (1, 10)
        let! open' = Gen.choose (0, most)
        let! loads = Gen.arrayOfLength open' (Gen.choose (0, depth + 2))
        let! opening = Gen.choose (0, most - open')
        let! handingOut = if open' = 0 then Gen.constant ValueNone else Gen.optionOf (Gen.choose (0, open' - 1)) |> Gen.map ValueOption.ofOption
        return depth, most, { Loads = loads; HandingOut = handingOut; Opening = opening }
    }

let private property name law =
    testProperty name (Prop.forAll (Arb.fromGen pool) law)

[<Tests>]
let tests =
    testList
        "Pipelining"
        [ test "connections: enough for the concurrency at the depth, and no more" {
              Expect.equal (Pipelining.connections 64 4) 16 "64 at 4 each"
              Expect.equal (Pipelining.connections 65 4) 17 "one more for the 65th"
              Expect.equal (Pipelining.connections 3 8) 1 "fewer than the depth: one"
              Expect.equal (Pipelining.connections 64 1) 64 "no pipelining: one each"
          }

          property "a new connection only while fewer than the most are open or opening" (fun (depth, most, p) ->
              match Pipelining.choose depth most p with
              | Pipelining.Open -> p.Loads.Length + p.Opening < most
              | _ -> true)

          property "the connection handing out answers takes the request while it has room" (fun (depth, most, p) ->
              match p.HandingOut with
              | ValueSome i when p.Loads[i] < depth -> Pipelining.choose depth most p = Pipelining.Use i
              | _ -> true)

          property "an idle connection is used before another is opened" (fun (depth, most, p) ->
              let handingOutHasRoom = p.HandingOut |> ValueOption.exists (fun i -> p.Loads[i] < depth)
              match Pipelining.choose depth most p with
              | Pipelining.Open -> handingOutHasRoom || not (Array.contains 0 p.Loads)
              | _ -> true)

          property "a full connection takes more only when no other may be had" (fun (depth, most, p) ->
              match Pipelining.choose depth most p with
              | Pipelining.Use i when p.Loads[i] >= depth ->
                  Array.forall (fun load -> load >= depth) p.Loads && p.Loads.Length + p.Opening >= most && p.Opening = 0
              | Pipelining.Use i -> p.Loads[i] = Array.min p.Loads || p.HandingOut = ValueSome i
              | Pipelining.Open -> true
              | Pipelining.WaitForOpening -> p.Opening > 0)

          testProperty "concurrency requests at a time fill the connections it needs, none past the depth" (fun (c: PositiveInt) (d: PositiveInt) (steps: bool list) ->
              let concurrency = min 200 c.Get
              let depth = min 16 d.Get
              let most = Pipelining.connections concurrency depth
              let mutable loads = [||]
              let mutable out = 0
              let ok = ResizeArray<bool>()
              // true: a request goes out (when fewer than the concurrency are); false: the fullest answers one.
              for step in steps @ List.replicate (2 * concurrency) true do
                  if step && out < concurrency then
                      match Pipelining.choose depth most { Loads = loads; HandingOut = ValueNone; Opening = 0 } with
                      | Pipelining.Use i -> loads[i] <- loads[i] + 1
                      | Pipelining.Open -> loads <- Array.append loads [| 1 |]
                      | Pipelining.WaitForOpening -> failwith "nothing was opening"
                      out <- out + 1
                  elif not step && out > 0 then
                      let i = Array.findIndex ((=) (Array.max loads)) loads
                      loads[i] <- loads[i] - 1
                      out <- out - 1
                  ok.Add(loads.Length <= most && Array.forall (fun load -> load <= depth) loads)
              Seq.forall id ok && out = concurrency && loads.Length = most)

          test "sent again once, and only when nothing of the answer came" {
              Expect.isTrue (Pipelining.sendAgain true 0) "never answered, first time"
              Expect.isFalse (Pipelining.sendAgain true 1) "already sent again"
              Expect.isFalse (Pipelining.sendAgain false 0) "its answer had begun"
          } ]
