/// Destination patterns: Bagheera's `%k` split exactly as its ReplaySinkTest had it,
/// named placeholders, and the law that record data never leaves its path segment.
module Replay.Tests.DestinationTests

open System
open Expecto
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Destination
open Replay.Tests.Generators

let private parsed pattern =
    match parse pattern with
    | Ok pattern -> pattern
    | Error message -> failtest message

let private values key : Values =
    { Key = key
      Namespace = "telemetry"
      Topic = "t"
      Partition = 3
      Offset = 42L
      ApiVersion = "1"
      Partitions = [] }

let private expandKey escaping key pattern = expand escaping (values key) (parsed pattern)

let private uri url =
    match Pipeline.parseUrl url with
    | Ok uri -> uri
    | Error why -> failtest $"'{url}' is not a usable URL: {why}"

/// The path segments of a URL as written (the parser is told not to canonicalise).
let private segments (uri: Uri) = uri.AbsolutePath.Split('/') |> Array.skip 1

let private bagheera =
    testList
        "Bagheera's ReplaySinkTest cases"
        [ test "'foo %k bar' splits into prefix 'foo ' and suffix ' bar'" {
              Expect.equal (parsed "foo %k bar").Parts [ Literal "foo "; Value Key; Literal " bar" ] "prefix, key, suffix"
              Expect.equal (expandKey Verbatim "baz" "foo %k bar") "foo baz bar" "the key between the halves"
          }

          test "a trailing %k has an empty suffix" {
              Expect.equal (parsed "foo %k").Parts [ Literal "foo "; Value Key ] "no suffix part"
              Expect.equal (expandKey Segment "doc-1" "http://h/submit/telemetry/%k") "http://h/submit/telemetry/doc-1" "key appended"
          }

          test "a pattern without %k is used as is" {
              Expect.equal (parsed "foo bar").Parts [ Literal "foo bar" ] "one literal"
              Expect.equal (expandKey Segment "ignored" "http://h/submit/fixed") "http://h/submit/fixed" "the key is not added"
          }

          test "only the first %k is a placeholder" {
              Expect.equal (parsed "a%kb%kc").Parts [ Literal "a"; Value Key; Literal "b%kc" ] "the second %k is literal"
              Expect.equal (expandKey Verbatim "K" "a%kb%kc") "aKb%kc" "expanded once"
          }

          test "placeholders after %k stay literal, as Bagheera's suffix did" {
              Expect.equal (expandKey Segment "K" "http://h/%k/{namespace}") "http://h/K/{namespace}" "suffix kept verbatim"
          }

          test "an empty pattern is an error" {
              Expect.isError (parse "") "empty"
              Expect.isError (parse "   ") "blank"
          } ]

let private named =
    testList
        "named placeholders"
        [ test "every name expands to its value" {
              let values =
                  { Key = "doc 1"
                    Namespace = "tele/metry"
                    Topic = "topic.a"
                    Partition = 7
                    Offset = 123456789012L
                    ApiVersion = "v?2"
                    Partitions = [ "a/b"; ".."; "c" ] }
              let expandWith pattern = expand Segment values (parsed pattern)
              Expect.equal (expandWith "http://h/{id}") "http://h/doc%201" "{id}"
              Expect.equal (expandWith "http://h/{key}") "http://h/doc%201" "{key} is {id}"
              Expect.equal (expandWith "http://h/{namespace}") "http://h/tele%2Fmetry" "{namespace}"
              Expect.equal (expandWith "http://h/{topic}") "http://h/topic.a" "{topic}"
              Expect.equal (expandWith "http://h/{partition}/{offset}") "http://h/7/123456789012" "{partition} and {offset}"
              Expect.equal (expandWith "http://h/{api_version}") "http://h/v%3F2" "{api_version}"
              Expect.equal (expandWith "http://h/{partitions}/x") "http://h/a%2Fb/%2E%2E/c/x" "{partitions}, each escaped"
              Expect.equal (expandWith "http://h/{namespace}/%k") "http://h/tele%2Fmetry/doc%201" "named before %k"
          }

          test "no partitions expand to nothing, and take their slash with them" {
              // So one pattern rebuilds both /submit/ns/id and /submit/ns/id/a/b (see Submission tests).
              Expect.equal (expand Segment (values "k") (parsed "http://h/x/{partitions}")) "http://h/x" "empty"
          }

          test "an unknown placeholder is an error naming it and the known ones" {
              match parse "http://h/{nope}/%k" with
              | Ok _ -> failtest "an unknown placeholder must not parse"
              | Error message ->
                  Expect.stringContains message "{nope}" "names the culprit"
                  Expect.stringContains message "{namespace}" "lists the known ones"
          }

          test "an unclosed brace is literal text" {
              Expect.equal (expandKey Segment "k" "http://h/{id") "http://h/{id" "no closing brace"
          }

          test "Verbatim escaping inserts values as they are" {
              Expect.equal (expandKey Verbatim "../a b?c#d" "http://h/x/%k") "http://h/x/../a b?c#d" "Bagheera's --raw-keys"
              let values = { values "k" with Partitions = [ "a/b"; "c" ] }
              Expect.equal (expand Verbatim values (parsed "http://h/{partitions}")) "http://h/a/b/c" "partitions too"
          } ]

let private escaping =
    testList
        "escaping"
        [ property "a key expanded into /a/%k/b stays one segment and reads back as itself" hostileKey (fun key ->
              let url = uri (expandKey Segment key "http://h/a/%k/b")
              Expect.equal url.Host "h" "host"
              Expect.stringStarts url.AbsolutePath "/a/" "path prefix"
              Expect.stringEnds url.AbsolutePath "/b" "path suffix"
              Expect.equal (segments url).Length 3 $"exactly 3 segments in {url.AbsolutePath}"
              Expect.equal url.Query "" "no query"
              Expect.equal url.Fragment "" "no fragment"
              Expect.equal (Uri.UnescapeDataString((segments url).[1])) key "the segment decodes to the key")

          property "a named value stays in its segment too" (Gen.zip hostileKey hostileKey) (fun (ns, key) ->
              let values = { values key with Namespace = ns }
              let url = uri (expand Segment values (parsed "http://h/a/{namespace}/{id}/b"))
              Expect.equal url.Host "h" "host"
              Expect.equal (segments url).Length 4 $"exactly 4 segments in {url.AbsolutePath}"
              Expect.equal (Uri.UnescapeDataString((segments url).[1])) ns "namespace segment"
              Expect.equal (Uri.UnescapeDataString((segments url).[2])) key "id segment"
              Expect.equal url.Query "" "no query"
              Expect.equal url.Fragment "" "no fragment")

          property "a value in the query stays inside its parameter" hostileKey (fun key ->
              let url = uri (expandKey Segment key "http://h/a?id={id}&x=1")
              Expect.equal url.AbsolutePath "/a" "path"
              Expect.equal (url.Query.Split('&').Length) 2 $"two parameters in {url.Query}"
              Expect.stringEnds url.Query "&x=1" "the operator's parameter is last"
              Expect.equal url.Fragment "" "no fragment")

          property "any .NET string, lone surrogates included, stays in its segment" anyString (fun key ->
              let url = uri (expandKey Segment key "http://h/a/%k/b")
              Expect.equal url.Host "h" "host"
              Expect.equal (segments url).Length 3 $"exactly 3 segments in {url.AbsolutePath}"
              Expect.equal url.Query "" "no query"
              Expect.equal url.Fragment "" "no fragment")

          test "dot segments are encoded so they cannot climb" {
              Expect.equal (escapeSegment ".") "%2E" "."
              Expect.equal (escapeSegment "..") "%2E%2E" ".."
              Expect.equal (expandKey Segment ".." "http://h/a/%k/b") "http://h/a/%2E%2E/b" "in a URL"
          } ]

let private authority =
    testList
        "placesValueInAuthority"
        [ yield property "when it says no, no value inserted verbatim changes the host" (Gen.zip (Gen.elements [ "http://h/%k"; "http://h/a/{id}/b"; "http://h/a?id={id}"; "http://h:8080/{namespace}/%k"; "https://h/{partitions}" ]) (Gen.zip hostileKey hostileKey))
          <| fun (pattern, (key, ns)) ->
              let pattern = parsed pattern
              Expect.isFalse (placesValueInAuthority pattern) "the operator fixed scheme and host"
              let values = { values key with Namespace = ns; Partitions = [ ns; key ] }
              match Pipeline.parseUrl (expand Verbatim values pattern) with
              | Ok url -> Expect.equal url.Host "h" "the host is the operator's"
              | Error _ -> ()
          for pattern, expected in
              [ "http://%k/x", true
                "http://{namespace}.example.com/x", true
                "http://h:{partition}/x", true
                "http://user@{id}/x", true
                "{namespace}://h/x", true
                "http%k://h/x", true
                "http:{id}/x", true
                "http://h/%k", false
                "http://h/a/{id}/b", false
                "http://h/a?id={id}", false
                "http://h/fixed", false
                "http://h/%k/{namespace}", false ] do
              yield test pattern { Expect.equal (placesValueInAuthority (parsed pattern)) expected pattern } ]

[<Tests>]
let tests = testList "Destination" [ bagheera; named; escaping; authority ]
