"""Generic validation: messages must match kube-apiserver v1.33 word for word."""
from __future__ import annotations

import pytest

from pybernetes.machinery import validation as v
from pybernetes.machinery.errors import invalid

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QNAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
              "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
              "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


@pytest.mark.parametrize("good", ["a", "example.com", "a-b.c-d", "0", "x" * 253])
def test_subdomain_valid(good):
    assert v.is_dns1123_subdomain(good) == []


@pytest.mark.parametrize("bad", ["", "A", "-a", "a-", "a..b", "a_b", ".a", "a."])
def test_subdomain_invalid_message(bad):
    assert v.is_dns1123_subdomain(bad) == [SUBDOMAIN_MSG]


def test_subdomain_too_long():
    assert v.is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]


def test_dns1123_label():
    assert v.is_dns1123_label("my-name") == []
    assert v.is_dns1123_label("a.b") == ["must not contain dots"]
    assert v.is_dns1123_label("Abc") == [
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    assert v.is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]


def test_dns1035_label():
    assert v.is_dns1035_label("abc-1") == []
    assert v.is_dns1035_label("1abc")[0].startswith(
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        "'abc-123', regex used")


def test_qualified_name():
    assert v.is_qualified_name("app") == []
    assert v.is_qualified_name("example.com/My_Name.1") == []
    assert v.is_qualified_name("-x") == [QNAME_PART]
    assert v.is_qualified_name("/x") == ["prefix part must be non-empty"]
    assert v.is_qualified_name("Example.com/x") == ["prefix part " + SUBDOMAIN_MSG]
    assert v.is_qualified_name("a/") == ["name part must be non-empty", QNAME_PART]
    assert v.is_qualified_name("x" * 64) == ["name part must be no more than 63 characters"]
    many = v.is_qualified_name("a/b/c")
    assert len(many) == 1 and many[0].startswith("a qualified name must consist of")
    assert many[0].endswith("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")


def test_label_value():
    assert v.is_valid_label_value("") == []
    assert v.is_valid_label_value("my_value.1") == []
    assert v.is_valid_label_value("bad value") == [
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
        "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
        "'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    assert v.is_valid_label_value("v" * 64) == ["must be no more than 63 characters"]


def test_port_name_and_num():
    assert v.is_valid_port_name("http") == []
    assert v.is_valid_port_name("-HTTP--") == [
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "must contain at least one letter (a-z)", "must not contain consecutive hyphens",
        "must not begin or end with a hyphen"]
    assert v.is_valid_port_name("a" * 16) == ["must be no more than 15 characters"]
    assert v.is_valid_port_num(0) == ["must be between 1 and 65535, inclusive"]
    assert v.is_valid_port_num(65535) == []


def test_env_var_and_config_map_key():
    assert v.is_env_var_name("MY_ENV.NAME") == []
    assert v.is_env_var_name("1ABC")[0].startswith("a valid environment variable name")
    assert v.is_env_var_name("..x") == ["must not start with '..'"]
    assert v.is_config_map_key("key.name") == []
    assert v.is_config_map_key(".") == ["must not be '.'"]
    assert v.is_config_map_key("a b")[0].startswith(
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name'")
    assert v.is_c_identifier("_ok1") == [] and v.is_c_identifier("1no")


def test_ip_and_cidr():
    assert v.is_valid_ip("10.0.0.1") == [] and v.is_valid_ip("2001:db8::1") == []
    assert v.is_valid_ip("010.0.0.1") == []  # legacy parsing tolerates leading zeros
    assert v.is_valid_ip("010.0.0.1", strict=True) == ["must not have leading 0s"]
    assert v.is_valid_ip("2001:DB8::1", strict=True) == ['must be in canonical form ("2001:db8::1")']
    assert v.is_valid_ip("300.1.1.1") == [
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    assert v.is_valid_cidr("10.0.0.0/8") == [] and v.is_valid_cidr("10.1.2.3/8") == []
    assert v.is_valid_cidr("10.1.2.3/8", strict=True) == [
        "must not have bits set beyond the prefix length"]
    assert v.is_valid_cidr("10.0.0.0/33") == [
        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    assert v.is_valid_cidr("10.0.0.0") != []


def test_object_meta_create_rules():
    assert v.validate_object_meta({"name": "ok", "namespace": "default"}, True) == []
    errs = v.validate_object_meta({}, True)
    assert [(e.type, e.field, e.detail) for e in errs] == [
        ("FieldValueRequired", "metadata.name", "name or generateName is required"),
        ("FieldValueRequired", "metadata.namespace", "")]
    errs = v.validate_object_meta({"name": "x", "namespace": "ns"}, False)
    assert [(e.field, e.message()) for e in errs] == [
        ("metadata.namespace", "Forbidden: not allowed on this type")]
    # generateName may end with a dash
    assert v.validate_object_meta({"generateName": "web-", "name": "web-abcde"}, False) == []
    errs = v.validate_object_meta({"generateName": "Web-", "name": "web-x"}, False)
    assert [e.field for e in errs] == ["metadata.generateName"]


def test_object_meta_error_renders_like_kubectl_sees_it():
    errs = v.validate_object_meta({"name": "Bad_Name", "namespace": "default"}, True)
    e = invalid("ConfigMap", "Bad_Name", errs)
    assert e.code == 422
    assert e.message == f'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'


def test_labels_annotations_finalizers_owners():
    errs = v.validate_object_meta({"name": "a", "labels": {"-bad": "ok", "good": "bad value"},
                                   "annotations": {"k": "x" * (256 * 1024)},
                                   "finalizers": ["orphan", "foregroundDeletion", "a/b/c"],
                                   "ownerReferences": [
                                       {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u",
                                        "controller": True},
                                       {"apiVersion": "apps/v1", "kind": "", "name": "", "uid": "",
                                        "controller": True}]}, False)
    fields = [(e.field, e.type) for e in errs]
    assert ("metadata.labels", "FieldValueInvalid") in fields
    assert sum(1 for f in fields if f[0] == "metadata.labels") == 2
    assert ("metadata.annotations", "FieldValueTooLong") in fields
    too_long = [e for e in errs if e.type == "FieldValueTooLong"][0]
    assert too_long.message() == "Too long: may not be more than 262144 bytes"
    fin = [e.detail for e in errs if e.field == "metadata.finalizers"]
    assert "finalizer orphan and foregroundDeletion cannot be both set" in fin
    owner = [(e.field, e.detail) for e in errs if e.field.startswith("metadata.ownerReferences")]
    assert ("metadata.ownerReferences", "/v1, Kind=Event is disallowed from being an owner") in owner
    assert ("metadata.ownerReferences.kind", "kind must not be empty") in owner
    assert ("metadata.ownerReferences.uid", "uid must not be empty") in owner
    assert any("Only one reference can have Controller set to true. Found \"true\" in references "
               "for Event/e and /" == d for _, d in owner)


def test_annotation_keys_are_lowercased_before_checking():
    assert v.validate_annotations({"Example.COM/Key": "v"}, "metadata.annotations") == []


def test_object_meta_update_immutables():
    old = {"name": "a", "namespace": "n", "uid": "1", "creationTimestamp": "t", "generation": 3}
    assert v.validate_object_meta_update(dict(old), old) == []
    new = dict(old, name="b", uid="2", generation=2)
    errs = v.validate_object_meta_update(new, old)
    assert [(e.field, e.message()) for e in errs] == [
        ("metadata.generation", "Invalid value: 2: must not be decremented"),
        ("metadata.name", 'Invalid value: "b": field is immutable'),
        ("metadata.uid", 'Invalid value: "2": field is immutable')]


def test_no_new_finalizers_while_deleting():
    old = {"name": "a", "deletionTimestamp": "t", "finalizers": ["x/a"]}
    new = dict(old, finalizers=["x/a", "x/b"])
    errs = v.validate_object_meta_update(new, old)
    assert [(e.type, e.detail) for e in errs] == [(
        "FieldValueForbidden",
        'no new finalizers can be added if the object is being deleted, found new finalizers '
        '[]string{"x/b"}')]


def test_path_segment_names():
    assert v.is_path_segment_name("system:admin") == []
    assert v.is_path_segment_name("..") == ["may not be '..'"]
    assert v.is_path_segment_name("a/b%") == ["may not contain '/'", "may not contain '%'"]
    errs = v.validate_object_meta({"name": "a/b"}, False, v.is_path_segment_name)
    assert [e.detail for e in errs] == ["may not contain '/'"]
