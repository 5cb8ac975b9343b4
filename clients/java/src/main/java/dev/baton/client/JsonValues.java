package dev.baton.client;

import com.google.protobuf.ListValue;
import com.google.protobuf.NullValue;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Plain Java values and records to and from protobuf {@code Value}s, and the JSON Schema of a
 * record: what {@link WorkerTool} needs without a JSON library. JSON maps to {@code null},
 * {@code Boolean}, {@code Double}, {@code String}, {@code List<Object>} and {@code
 * Map<String, Object>}.
 */
final class JsonValues {
  private JsonValues() {}

  /** A bad argument or an unsupported type; its message says which. */
  static final class JsonException extends IllegalArgumentException {
    JsonException(String message) {
      super(message);
    }
  }

  // ------------------------------------------------------------------ Java -> Value

  /**
   * {@code null}, booleans, numbers, strings, enums (their name), maps with string keys,
   * collections, arrays, records (an object of their components), {@code Optional}, {@code
   * Value}, {@code Struct} and {@code ListValue}.
   */
  static Value toValue(Object o) {
    if (o == null) {
      return Value.newBuilder().setNullValue(NullValue.NULL_VALUE).build();
    }
    if (o instanceof Value v) {
      return v;
    }
    if (o instanceof Struct s) {
      return Value.newBuilder().setStructValue(s).build();
    }
    if (o instanceof ListValue l) {
      return Value.newBuilder().setListValue(l).build();
    }
    if (o instanceof Optional<?> opt) {
      return toValue(opt.orElse(null));
    }
    if (o instanceof Boolean b) {
      return Value.newBuilder().setBoolValue(b).build();
    }
    if (o instanceof Number n) {
      double d = n.doubleValue();
      if (Double.isNaN(d) || Double.isInfinite(d)) {
        throw new JsonException(n + " is not a JSON number");
      }
      return Value.newBuilder().setNumberValue(d).build();
    }
    if (o instanceof CharSequence || o instanceof Character) {
      return Value.newBuilder().setStringValue(o.toString()).build();
    }
    if (o instanceof Enum<?> e) {
      return Value.newBuilder().setStringValue(e.name()).build();
    }
    if (o instanceof Map<?, ?> m) {
      return Value.newBuilder().setStructValue(toStruct(m)).build();
    }
    if (o instanceof Iterable<?> it) {
      ListValue.Builder list = ListValue.newBuilder();
      for (Object item : it) {
        list.addValues(toValue(item));
      }
      return Value.newBuilder().setListValue(list).build();
    }
    if (o.getClass().isArray()) {
      ListValue.Builder list = ListValue.newBuilder();
      for (int i = 0; i < Array.getLength(o); i++) {
        list.addValues(toValue(Array.get(o, i)));
      }
      return Value.newBuilder().setListValue(list).build();
    }
    if (o instanceof Record r) {
      Struct.Builder s = Struct.newBuilder();
      for (RecordComponent c : r.getClass().getRecordComponents()) {
        try {
          s.putFields(c.getName(), toValue(c.getAccessor().invoke(r)));
        } catch (ReflectiveOperationException e) {
          throw new JsonException("cannot read " + c.getName() + " of " + r.getClass().getSimpleName());
        }
      }
      return Value.newBuilder().setStructValue(s).build();
    }
    throw new JsonException(o.getClass().getName() + " is not JSON");
  }

  static Struct toStruct(Map<?, ?> m) {
    Struct.Builder s = Struct.newBuilder();
    for (Map.Entry<?, ?> e : m.entrySet()) {
      if (!(e.getKey() instanceof String key)) {
        throw new JsonException("object keys must be strings, not " + e.getKey());
      }
      s.putFields(key, toValue(e.getValue()));
    }
    return s.build();
  }

  // ------------------------------------------------------------------ Value -> Java

  /** The plain Java form of a Value (numbers as Double). */
  static Object plain(Value v) {
    switch (v.getKindCase()) {
      case BOOL_VALUE:
        return v.getBoolValue();
      case NUMBER_VALUE:
        return v.getNumberValue();
      case STRING_VALUE:
        return v.getStringValue();
      case STRUCT_VALUE:
        return plain(v.getStructValue());
      case LIST_VALUE:
        List<Object> list = new ArrayList<>();
        for (Value item : v.getListValue().getValuesList()) {
          list.add(plain(item));
        }
        return list;
      default:
        return null;
    }
  }

  static Map<String, Object> plain(Struct s) {
    Map<String, Object> map = new LinkedHashMap<>();
    s.getFieldsMap().forEach((k, item) -> map.put(k, plain(item)));
    return map;
  }

  /** Decodes a call's arguments into {@code type} (a record, or Map/Struct for raw access). */
  @SuppressWarnings("unchecked")
  static <T> T decode(Struct arguments, Class<T> type) {
    if (type == Struct.class) {
      return (T) arguments;
    }
    return (T) convert(Value.newBuilder().setStructValue(arguments).build(), type, "arguments");
  }

  private static Object convert(Value v, Type type, String path) {
    boolean isNull = v.getKindCase() == Value.KindCase.NULL_VALUE || v.getKindCase() == Value.KindCase.KIND_NOT_SET;
    Class<?> raw = rawClass(type);
    if (raw == Optional.class) {
      return isNull ? Optional.empty() : Optional.of(convert(v, typeArgument(type, 0), path));
    }
    if (isNull) {
      if (raw.isPrimitive()) {
        throw new JsonException(path + " must not be null");
      }
      return null;
    }
    if (raw == Object.class) {
      return plain(v);
    }
    if (raw == Value.class) {
      return v;
    }
    if (raw == String.class) {
      return expect(v, Value.KindCase.STRING_VALUE, "a string", path).getStringValue();
    }
    if (raw == boolean.class || raw == Boolean.class) {
      return expect(v, Value.KindCase.BOOL_VALUE, "a boolean", path).getBoolValue();
    }
    if (isIntegral(raw)) {
      double d = expect(v, Value.KindCase.NUMBER_VALUE, "an integer", path).getNumberValue();
      if (d != Math.rint(d) || Double.isInfinite(d)) {
        throw new JsonException(path + " must be an integer, not " + d);
      }
      long l = (long) d;
      if (raw == int.class || raw == Integer.class) {
        if (l < Integer.MIN_VALUE || l > Integer.MAX_VALUE) {
          throw new JsonException(path + " is out of range: " + l);
        }
        return (int) l;
      }
      if (raw == BigInteger.class) {
        return BigInteger.valueOf(l);
      }
      return l;
    }
    if (raw == double.class || raw == Double.class) {
      return expect(v, Value.KindCase.NUMBER_VALUE, "a number", path).getNumberValue();
    }
    if (raw == float.class || raw == Float.class) {
      return (float) expect(v, Value.KindCase.NUMBER_VALUE, "a number", path).getNumberValue();
    }
    if (raw == BigDecimal.class) {
      return BigDecimal.valueOf(expect(v, Value.KindCase.NUMBER_VALUE, "a number", path).getNumberValue());
    }
    if (raw.isEnum()) {
      String name = expect(v, Value.KindCase.STRING_VALUE, "a string", path).getStringValue();
      for (Object constant : raw.getEnumConstants()) {
        if (((Enum<?>) constant).name().equals(name)) {
          return constant;
        }
      }
      throw new JsonException(path + " must be one of " + enumNames(raw) + ", not " + name);
    }
    if (raw == Struct.class) {
      return expect(v, Value.KindCase.STRUCT_VALUE, "an object", path).getStructValue();
    }
    if (Map.class.isAssignableFrom(raw)) {
      Struct s = expect(v, Value.KindCase.STRUCT_VALUE, "an object", path).getStructValue();
      Type valueType = typeArgument(type, 1);
      Map<String, Object> map = new LinkedHashMap<>();
      s.getFieldsMap().forEach((k, item) -> map.put(k, convert(item, valueType, path + "." + k)));
      return map;
    }
    if (List.class.isAssignableFrom(raw) || Set.class.isAssignableFrom(raw) || raw == Collection.class) {
      List<Value> items = expect(v, Value.KindCase.LIST_VALUE, "an array", path).getListValue().getValuesList();
      Type itemType = typeArgument(type, 0);
      Collection<Object> out = Set.class.isAssignableFrom(raw) ? new LinkedHashSet<>() : new ArrayList<>();
      for (int i = 0; i < items.size(); i++) {
        out.add(convert(items.get(i), itemType, path + "[" + i + "]"));
      }
      return out;
    }
    if (raw.isRecord()) {
      return record(expect(v, Value.KindCase.STRUCT_VALUE, "an object", path).getStructValue(), raw, path);
    }
    throw new JsonException(path + ": unsupported type " + type.getTypeName());
  }

  private static Object record(Struct s, Class<?> type, String path) {
    RecordComponent[] components = type.getRecordComponents();
    Set<String> known = new LinkedHashSet<>();
    Object[] values = new Object[components.length];
    Class<?>[] types = new Class<?>[components.length];
    for (int i = 0; i < components.length; i++) {
      RecordComponent c = components[i];
      known.add(c.getName());
      types[i] = c.getType();
      String at = path.equals("arguments") ? c.getName() : path + "." + c.getName();
      Value item = s.getFieldsMap().get(c.getName());
      if (item == null) {
        if (required(c.getType())) {
          throw new JsonException("missing argument " + at);
        }
        values[i] = c.getType() == Optional.class ? Optional.empty() : null;
      } else {
        values[i] = convert(item, c.getGenericType(), at);
      }
    }
    for (String name : s.getFieldsMap().keySet()) {
      if (!known.contains(name)) {
        throw new JsonException("unexpected argument " + (path.equals("arguments") ? name : path + "." + name));
      }
    }
    try {
      Constructor<?> constructor = type.getDeclaredConstructor(types);
      constructor.setAccessible(true);
      return constructor.newInstance(values);
    } catch (InvocationTargetException e) {
      // The record's own checks (compact constructor) refused the values.
      Throwable cause = e.getCause();
      throw new JsonException(path + ": " + (cause.getMessage() != null ? cause.getMessage() : cause.toString()));
    } catch (ReflectiveOperationException e) {
      throw new JsonException("cannot create " + type.getSimpleName() + ": " + e);
    }
  }

  private static Value expect(Value v, Value.KindCase kind, String what, String path) {
    if (v.getKindCase() != kind) {
      throw new JsonException(path + " must be " + what);
    }
    return v;
  }

  // ------------------------------------------------------------------ JSON Schema

  /**
   * The JSON Schema of a record's components: an object schema whose required properties are
   * every component except {@code Optional} ones, with {@link ToolParam} descriptions.
   */
  static Map<String, Object> schema(Class<?> recordType) {
    if (!recordType.isRecord()) {
      throw new IllegalArgumentException(recordType.getName() + " is not a record");
    }
    Map<String, Object> properties = new LinkedHashMap<>();
    List<Object> required = new ArrayList<>();
    for (RecordComponent c : recordType.getRecordComponents()) {
      Map<String, Object> property = new LinkedHashMap<>(schemaOf(c.getGenericType(), c.getName()));
      ToolParam param = c.getAnnotation(ToolParam.class);
      if (param != null && !param.value().isEmpty()) {
        property.put("description", param.value());
      }
      properties.put(c.getName(), property);
      if (required(c.getType())) {
        required.add(c.getName());
      }
    }
    Map<String, Object> schema = new LinkedHashMap<>();
    schema.put("type", "object");
    schema.put("properties", properties);
    schema.put("required", required);
    schema.put("additionalProperties", false);
    return schema;
  }

  private static Map<String, Object> schemaOf(Type type, String name) {
    Class<?> raw = rawClass(type);
    if (raw == Optional.class) {
      return schemaOf(typeArgument(type, 0), name);
    }
    if (raw == String.class || raw == char.class || raw == Character.class) {
      return Map.of("type", "string");
    }
    if (raw == boolean.class || raw == Boolean.class) {
      return Map.of("type", "boolean");
    }
    if (isIntegral(raw)) {
      return Map.of("type", "integer");
    }
    if (raw == double.class || raw == Double.class || raw == float.class || raw == Float.class || raw == BigDecimal.class) {
      return Map.of("type", "number");
    }
    if (raw.isEnum()) {
      return Map.of("type", "string", "enum", enumNames(raw));
    }
    if (Map.class.isAssignableFrom(raw) || raw == Struct.class) {
      return Map.of("type", "object");
    }
    if (Collection.class.isAssignableFrom(raw)) {
      return Map.of("type", "array", "items", schemaOf(typeArgument(type, 0), name));
    }
    if (raw.isRecord()) {
      return schema(raw);
    }
    if (raw == Object.class || raw == Value.class) {
      return Map.of();
    }
    throw new IllegalArgumentException("unsupported type " + type.getTypeName() + " of tool parameter " + name);
  }

  private static boolean required(Class<?> type) {
    return type != Optional.class;
  }

  private static boolean isIntegral(Class<?> raw) {
    return raw == int.class || raw == Integer.class || raw == long.class || raw == Long.class
        || raw == BigInteger.class;
  }

  private static List<Object> enumNames(Class<?> raw) {
    List<Object> names = new ArrayList<>();
    for (Object constant : raw.getEnumConstants()) {
      names.add(((Enum<?>) constant).name());
    }
    return names;
  }

  private static Class<?> rawClass(Type type) {
    if (type instanceof Class<?> c) {
      return c;
    }
    if (type instanceof ParameterizedType p) {
      return (Class<?>) p.getRawType();
    }
    if (type instanceof GenericArrayType) {
      return Object[].class;
    }
    return Object.class; // wildcards, type variables: take what JSON gives
  }

  private static Type typeArgument(Type type, int index) {
    if (type instanceof ParameterizedType p && p.getActualTypeArguments().length > index) {
      Type arg = p.getActualTypeArguments()[index];
      return arg instanceof Class<?> || arg instanceof ParameterizedType ? arg : Object.class;
    }
    return Object.class;
  }
}
